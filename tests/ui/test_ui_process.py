"""``fedbox ui`` as users start it: a real process, its printed URL, a real HTTP client."""

from __future__ import annotations

import httpx
from ui_process import UiProcess
from ui_world import ME, World


def test_the_printed_url_logs_in_and_nothing_else_does(world: World) -> None:
    ui = UiProcess("--email", ME, "--root", str(world.root), "--state-dir", str(world.state))
    try:
        assert ui.url.startswith("http://127.0.0.1:")
        assert httpx.get(ui.base + "/").status_code == 403
        with httpx.Client(follow_redirects=True) as browser:
            page = browser.get(ui.url)
            assert page.status_code == 200 and ME in page.text
            assert "token=" not in str(page.url)
            assert browser.get(ui.base + "/jobs").status_code == 200
    finally:
        ui.close()
    assert ui.proc.returncode == 0


def test_another_host_is_served_with_a_warning(world: World) -> None:
    ui = UiProcess("--email", ME, "--state-dir", str(world.state), "--host", "0.0.0.0")
    try:
        with httpx.Client(follow_redirects=True) as browser:
            assert browser.get(ui.url).status_code == 200
            port = ui.base.rsplit(":", 1)[1]
            other_name = browser.get(f"{ui.base}/", headers={"host": f"laptop.lan:{port}"})
            assert other_name.status_code == 200
    finally:
        ui.close()
    assert "warning" in ui.stderr() and "0.0.0.0" in ui.stderr()


def test_a_bad_root_is_one_error_line(world: World, tmp_path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "fedbox", "ui", "--email", ME, "--root", "nope://x", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr


def test_it_stops_while_a_page_follows_a_live_run(world: World) -> None:
    from ui_world import RunWriter

    writer = RunWriter(world.state, rounds=2)
    ui = UiProcess("--email", ME, "--state-dir", str(world.state))
    try:
        with httpx.Client(follow_redirects=True, timeout=30) as browser:
            browser.get(ui.url)
            with browser.stream("GET", f"{ui.base}/runs/demo-run/events") as events:
                first = next(events.iter_lines())
                assert first.startswith("data: ")
                ui.proc.terminate()  # the stream is still open: the run goes on
                ui.proc.wait(timeout=20)
    finally:
        ui.close()
        writer.close()
    assert ui.proc.returncode == 0
