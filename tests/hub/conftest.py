"""One real hub per test module (starting a process costs about a second)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_process import HubProcess


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    server = HubProcess(Path(tmp_path_factory.mktemp("hub")))
    yield server
    server.stop()
