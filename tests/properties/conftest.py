"""Hypothesis profiles for the parser properties, chosen by ``$FEDBOX_HYPOTHESIS_PROFILE``.

``ci`` (the default) runs a few thousand cases over the whole folder; ``dev`` a few
hundred, to iterate; ``long`` a hundred thousand per test, to search for a while. No
deadline: a hang is caught by pytest-timeout, and timings on a loaded machine would
make a slow case look like a failure; ``benchmarks/parsers.py`` measures speed.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "print_blob": True,
    # the autouse FEDBOX_HOME fixture is function-scoped; nothing here uses it
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
settings.register_profile("ci", max_examples=150, **_COMMON)
settings.register_profile("dev", max_examples=40, **_COMMON)
settings.register_profile("long", max_examples=100_000, **_COMMON)
settings.load_profile(os.environ.get("FEDBOX_HYPOTHESIS_PROFILE", "ci"))
