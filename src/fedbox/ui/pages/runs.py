"""Runs: every FL run this identity took part in (``fedbox.fl.history``), each with its
per-round table and metric plots, pushed to the page as server-sent events while the run
goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response, StreamingResponse

from fedbox.fl.history import RunHistory, RunNotFound, list_runs, read_run
from fedbox.fl.record import is_held, record_path
from fedbox.ui.context import Ui, UiContext, render

__all__ = ["REFRESH", "router", "run_json"]

router = APIRouter()
RUNNING = "running"
REFRESH = 0.25
"""Seconds between looks at a running run's record (a stat; it is read only when it
changed)."""


def run_json(history: RunHistory) -> dict[str, Any]:
    """What the page's script draws: the summary, the rounds, every metric name."""
    rounds = [asdict(r) for r in history.rounds]
    metrics = sorted({name for r in history.rounds for name in r.metrics})
    return {"summary": asdict(history.summary), "rounds": rounds, "metrics": metrics}


def _signature(ui: UiContext, name: str) -> tuple[object, ...]:
    """What changes when the run's record does: its files' sizes and times (SQLite in
    WAL mode commits to the ``-wal`` file), and whether its aggregator still holds it."""
    path = record_path(ui.settings.state_dir, name)
    stats: list[object] = [is_held(ui.settings.state_dir, name)]
    for file in (path, path.with_name(path.name + "-wal")):
        try:
            st = file.stat()
        except FileNotFoundError:
            stats.append(None)
        else:
            stats.append((st.st_size, st.st_mtime_ns))
    return tuple(stats)


def _read(ui: UiContext, name: str) -> RunHistory:
    try:
        return read_run(ui.settings.state_dir, name)
    except RunNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/runs")
def runs(request: Request, ui: Ui) -> Response:
    return render(request, "runs.html", page="runs", runs=list_runs(ui.settings.state_dir))


@router.get("/runs/{name}")
def run(request: Request, name: str, ui: Ui) -> Response:
    history = _read(ui, name)
    return render(
        request, "run.html", page="runs", history=history, initial=run_json(history), name=name
    )


@router.get("/runs/{name}/events")
async def run_events(request: Request, name: str, ui: Ui) -> Response:
    """The run as JSON each time it changes, then an ``end`` event once it is no longer
    running (finished, failed, or interrupted: a resumed run is followed by reloading)."""
    initial = await anyio.to_thread.run_sync(_signature, ui, name)
    first = await anyio.to_thread.run_sync(_read, ui, name)

    async def stream() -> AsyncIterator[str]:
        history, seen = first, initial
        while True:
            yield f"data: {json.dumps(run_json(history))}\n\n"
            if history.summary.status != RUNNING:
                yield "event: end\ndata: {}\n\n"
                return
            signature = seen
            while signature == seen:
                await asyncio.sleep(REFRESH)
                if await request.is_disconnected():
                    return
                signature = await anyio.to_thread.run_sync(_signature, ui, name)
            seen = signature
            history = await anyio.to_thread.run_sync(_read, ui, name)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
