"""``python -m fedbox`` is the ``fedbox`` command."""

from fedbox.cli.main import main

main()
