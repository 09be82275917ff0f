"""One real hub per test module (starting a process costs about a second)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_process import HubProcess


@pytest.fixture(scope="module")
def hub_args() -> tuple[str, ...]:
    """Extra ``fedbox hub`` arguments; a module overrides this to start its hub otherwise."""
    return ()


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, hub_args: tuple[str, ...]
) -> Iterator[HubProcess]:
    server = HubProcess(Path(tmp_path_factory.mktemp("hub")), *hub_args)
    yield server
    server.stop()
