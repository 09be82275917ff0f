"""A datasite's process answers the run's invitation before it imports Flower (issue 20),
and the messages that came while Flower loaded reach the ClientApp's side after."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from fl_helpers import FBCOUNT

import fedbox
from fedbox.fl.grid import FileGrid

AGG, SITE = "agg@x.org", "site@y.org"
APP = "agg@x.org_fbcount_1700000000"

# Runs the client process's entry point with every import of Flower held until the file
# named by the first argument exists: the datasite can answer only what needs no Flower.
HOLD_FLOWER = """
import os, runpy, sys, time
release = sys.argv.pop(1)
class HoldFlower:
    def find_spec(self, name, path=None, target=None):
        while name.split(".")[0] == "flwr" and not os.path.exists(release):
            time.sleep(0.05)
        return None
sys.meta_path.insert(0, HoldFlower())
runpy.run_module("fedbox.cli.fl_commands", run_name="__main__")
"""


def _start_site(root: Path, tmp_path: Path, release: Path) -> subprocess.Popen[str]:
    """A datasite process of the run, its imports of Flower held until ``release``."""
    cmd = [sys.executable, "-c", HOLD_FLOWER, str(release), "run", str(FBCOUNT)]
    cmd += ["--email", SITE, "--root", str(root), "--state-dir", str(tmp_path / "site")]
    cmd += ["--aggregator", AGG, "--datasite", SITE, "--app-name", APP]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@contextlib.contextmanager
def _joined_site(
    root: Path, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], FileGrid, Path]]:
    """A datasite process that joined the run while Flower is held back, the
    aggregator's grid, and the file that releases Flower; everything ended after."""
    release = tmp_path / "release-flower"
    site = _start_site(root, tmp_path, release)
    agg = fedbox.connect(root, AGG, state_dir=tmp_path / "agg")
    try:
        grid = FileGrid(agg.app(APP), [SITE], timeout=60)
        assert grid.wait_for_datasites(1, timeout=60) == [SITE]
        yield site, grid, release
    finally:
        release.touch()
        if site.poll() is None:
            site.kill()
            site.wait()
        agg.close()


def test_the_join_is_answered_before_flower_loads_and_the_rest_waits_for_it(
    root: Path, tmp_path: Path
) -> None:
    with _joined_site(root, tmp_path) as (site, grid, release):
        assert not release.exists() and site.poll() is None  # Flower still held
        release.touch()
        assert grid.stop_nodes(wait=60) == {SITE}  # the stop waited at the desk, then ran
        output, _ = site.communicate(timeout=60)
        assert site.returncode == 0, output
        assert "stopped by the aggregator after 2 messages" in output


def test_a_datasite_ended_while_flower_loads_exits_as_interrupted(
    root: Path, tmp_path: Path
) -> None:
    with _joined_site(root, tmp_path) as (site, _, _):
        site.terminate()
        output, _ = site.communicate(timeout=60)
        assert site.returncode == 130, output
