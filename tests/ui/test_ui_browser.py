"""``fedbox ui`` in a real browser: Debian's Chromium driven by Playwright, against real
``fedbox ui`` and ``fedbox simulate`` processes. Screenshots of every page (light, dark,
phone width) go under the pytest temp dir; the path is printed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_process import UiProcess
from ui_world import ME, PEER, SCREENSHOT_DIRS, RunWriter, World, change_peer_key

from fedbox.crypto import TrustStore
from fedbox.fl.history import list_runs
from fedbox.fl.simulate import DEFAULT_AGGREGATOR

CHROMIUM = Path("/usr/bin/chromium")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 860}


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        reason = f"no browser at {CHROMIUM}: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ui-screenshots")
    SCREENSHOT_DIRS.append(folder)  # printed at the end of the session (conftest)
    return folder


def _page(browser, ui: UiProcess, scheme: str = "light", viewport: dict | None = None):
    context = browser.new_context(color_scheme=scheme, viewport=viewport or LAPTOP)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(ui.url)
    return page


def _points(page) -> int:
    return page.evaluate(
        "() => Chart.getChart(document.querySelector('figure[data-metric=counts] canvas'))"
        ".data.labels.length"
    )


def test_every_page_live_plot_and_job_approval_in_a_browser(
    browser, shots: Path, world: World
) -> None:
    writer = RunWriter(world.state, rounds=3)
    ui = UiProcess("--email", ME, "--root", str(world.root), "--state-dir", str(world.state))
    try:
        page = _page(browser, ui)
        assert "token=" not in page.url
        page.get_by_role("heading", name="Overview").wait_for()
        page.screenshot(path=shots / "overview.png", full_page=True)

        page.keyboard.press("Tab")  # the skip link comes first, then the pages
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        for _ in range(3):  # Overview, Runs, Messages
            page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Messages"
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="Messages").wait_for()
        page.screenshot(path=shots / "messages.png", full_page=True)
        page.locator("#messages tbody a").first.click()
        page.get_by_text("authenticated").wait_for()  # the response, opened with our keys
        assert page.get_by_text("digest check").count() == 2
        page.screenshot(path=shots / "message.png", full_page=True)

        new_key = change_peer_key(world.root)
        page.goto(ui.base + "/peers")
        assert page.locator(f"tr[data-peer='{PEER}'] .badge").text_content() == "changed"
        page.screenshot(path=shots / "peers-changed.png", full_page=True)
        page.get_by_role("button", name=f"Trust the published key of {PEER}").click()
        page.wait_for_function(
            f"() => document.querySelector(\"tr[data-peer='{PEER}'] .badge\")"
            ".textContent === 'trusted'"
        )
        assert TrustStore(world.state).pinned(PEER) == new_key
        page.screenshot(path=shots / "peers.png", full_page=True)

        writer.step("round 1")
        page.goto(ui.base + "/runs")
        page.screenshot(path=shots / "runs.png", full_page=True)
        page.get_by_role("link", name="demo-run").click()
        page.wait_for_function("() => document.getElementById('live').textContent === 'live'")
        assert _points(page) == 1
        writer.step("round 2")
        page.wait_for_function(
            "() => Chart.getChart(document.querySelector('figure[data-metric=counts] canvas'))"
            ".data.labels.length === 2"
        )
        assert page.locator("#rounds tbody tr").count() == 2
        writer.step("round 3")
        writer.step("finished")
        page.wait_for_function("() => document.getElementById('live').textContent === 'finished'")
        assert _points(page) == 3 and page.locator("#run-status").text_content() == "finished"
        assert page.locator("figure.chart").count() == 3  # loss, num-examples, counts
        page.screenshot(path=shots / "run.png", full_page=True)

        page.goto(ui.base + "/jobs")
        page.screenshot(path=shots / "jobs.png", full_page=True)
        page.locator("#received-jobs tbody a").first.click()
        assert page.locator("#job-state").text_content() == "submitted"
        page.screenshot(path=shots / "job.png", full_page=True)
        page.get_by_role("button", name="Approve").click()
        page.wait_for_function(
            "() => document.getElementById('job-state').textContent === 'approved'"
        )
        page.screenshot(path=shots / "job-approved.png", full_page=True)

        for scheme, viewport, suffix in (("dark", LAPTOP, "dark"), ("light", PHONE, "phone")):
            other = _page(browser, ui, scheme, viewport)
            for path, name in (("/", "overview"), ("/runs/demo-run", "run"), ("/jobs", "jobs")):
                other.goto(ui.base + path)
                other.wait_for_load_state("networkidle")
                other.screenshot(path=shots / f"{name}-{suffix}.png", full_page=True)
                assert other.evaluate(
                    "document.documentElement.scrollWidth <= window.innerWidth"
                ), f"{path} scrolls sideways at {viewport}"
            if scheme == "dark":
                background = other.evaluate(
                    "getComputedStyle(document.documentElement).backgroundColor"
                )
                assert background == "rgb(21, 22, 26)"
    finally:
        ui.close()
        writer.close()


def _simulate(store: Path, rounds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedbox",
            "simulate",
            str(EXAMPLES / "digits"),
            "--clients",
            "2",
            "--root",
            str(store),
            "--run-config",
            f"num-server-rounds={rounds} local-epochs=1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _aggregator_state(store: Path) -> Path:
    return store.with_name(store.name + "-state") / DEFAULT_AGGREGATOR


def test_a_simulate_runs_flower_messages_open_in_the_browser(
    browser, shots: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    sim = _simulate(store, rounds=2)
    _, err = sim.communicate(timeout=600)
    assert sim.returncode == 0, err
    ui = UiProcess(
        "--email",
        DEFAULT_AGGREGATOR,
        "--root",
        str(store),
        "--state-dir",
        str(_aggregator_state(store)),
    )
    try:
        page = _page(browser, ui)
        page.goto(ui.base + "/messages?direction=out")
        page.screenshot(path=shots / "simulate-messages.png", full_page=True)
        page.locator("#messages tbody a").first.click()
        page.get_by_text("flower message").first.wait_for()
        assert page.get_by_text("digest check").count() == 2
        page.screenshot(path=shots / "simulate-message.png", full_page=True)
    finally:
        ui.close()


@pytest.mark.skipif(
    importlib.util.find_spec("fedbox.fl.replay") is None,
    reason="fedbox simulate records its runs only with branch resume's RecordingGrid "
    "(fedbox.fl.replay), not merged into this branch",
)
def test_a_simulate_runs_plot_gains_points_while_it_goes(
    browser, shots: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    state = _aggregator_state(store)
    sim = _simulate(store, rounds=12)
    ui = None
    try:
        from waiting import wait_until

        wait_until(lambda: state.is_dir() and list_runs(state), "the run's record", 120)
        (run,) = list_runs(state)
        ui = UiProcess(
            "--email", DEFAULT_AGGREGATOR, "--root", str(store), "--state-dir", str(state)
        )
        page = _page(browser, ui)
        page.goto(f"{ui.base}/runs/{run.name}")
        page.wait_for_function("() => document.getElementById('live').textContent === 'live'")
        page.wait_for_function(
            "() => window.Chart && document.querySelector('figure[data-metric=counts]')"
        )
        seen = _points(page)
        page.wait_for_function(
            f"() => Chart.getChart(document.querySelector('figure[data-metric=counts] canvas'))"
            f".data.labels.length > {seen}"
        )
        page.wait_for_function(
            "() => document.getElementById('live').textContent === 'finished'", timeout=300_000
        )
        assert _points(page) >= 12
        page.screenshot(path=shots / "simulate-run.png", full_page=True)
    finally:
        if ui is not None:
            ui.close()
        if sim.poll() is None:
            sim.terminate()
        sim.wait(timeout=60)
