"""The model of a run nobody interrupts, which every killed run must end with."""

from __future__ import annotations

import numpy as np
import pytest
from chaos_run import AGG, Deployment


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The final model of an uninterrupted run of the chaos app (computed once)."""
    dep = Deployment(tmp_path_factory.mktemp("reference"))
    try:
        dep.start_all()
        assert dep.finish() == 0, dep.logs(AGG)
        return dep.final()
    finally:
        dep.close()
