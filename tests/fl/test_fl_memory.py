"""A model-sized buffer freed in one round is reused by the next without new page faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fedbox.fl.memory import ENV

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's mallopt; elsewhere a no-op"
)

# Allocates, fills and frees 64 MiB twice; prints the minor page faults of the second
# allocation. In a process of its own: the allocator setting is process-wide.
ROUND_TWICE = """
import json, resource
from fedbox.fl.memory import keep_freed_memory
applied = keep_freed_memory()
size = 64 << 20
buffer = b"\\1" * size
del buffer
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
buffer = b"\\2" * size
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": applied, "faults": faults}))
"""
PAGES = (64 << 20) // 4096


def second_round(env_value: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if env_value is not None:
        env[ENV] = env_value
    out = subprocess.run(
        [sys.executable, "-c", ROUND_TWICE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_freed_buffer_is_reused_without_faulting_its_pages_again() -> None:
    result = second_round(None)
    assert result["applied"] is True
    assert result["faults"] < PAGES // 10


def test_system_setting_leaves_the_allocator_alone() -> None:
    result = second_round("system")
    assert result["applied"] is False
    assert result["faults"] > PAGES // 2  # each page of a fresh mapping faults once
