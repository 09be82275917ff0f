"""Chaos: whole runs whose aggregator and datasites are killed with SIGKILL at random
moments and started again. Each must end with the model of a run nobody killed, bit for
bit; the app's clients refuse a message they handled before, so a message handled twice
would fail the run. ``FEDBOX_CHAOS_RUNS`` runs (10 by default; ``benchmarks/chaos.py``
runs more and counts survivors)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
from chaos_run import AGG, chaos_run

RUNS = int(os.environ.get("FEDBOX_CHAOS_RUNS", "10"))
KILLS = 3


@pytest.mark.parametrize("seed", range(RUNS))
def test_a_run_survives_random_kills(tmp_path: Path, reference: np.ndarray, seed: int) -> None:
    dep = chaos_run(tmp_path, random.Random(seed), KILLS)
    try:
        code = dep.procs[AGG].returncode
        assert code == 0, f"kills {dep.starts}\n{dep.logs(AGG)}"
        history = dep.history()
        assert history is not None and history.summary.status == "finished"
        assert all(r.errors == 0 and r.timeouts == 0 for r in history.rounds), history
        np.testing.assert_array_equal(dep.final(), reference)
    finally:
        dep.close()
