"""``python -m fedbox`` is the ``fedbox`` command."""

from fedbox.cli.entry import main

main()
