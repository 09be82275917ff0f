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
from fedbox.ui.context import Ui, UiContext, render

__all__ = ["REFRESH", "router", "run_json"]

router = APIRouter()
RUNNING = "running"
REFRESH = 1.0
"""Seconds between looks at a running run's record; a page needs no more than this."""


def run_json(history: RunHistory) -> dict[str, Any]:
    """What the page's script draws: the summary, the rounds, every metric name."""
    rounds = [asdict(r) for r in history.rounds]
    metrics = sorted({name for r in history.rounds for name in r.metrics})
    return {"summary": asdict(history.summary), "rounds": rounds, "metrics": metrics}


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
    first = await anyio.to_thread.run_sync(_read, ui, name)

    async def stream() -> AsyncIterator[str]:
        history, last = first, ""
        while True:
            data = json.dumps(run_json(history))
            if data != last:
                yield f"data: {data}\n\n"
                last = data
            if history.summary.status != RUNNING:
                yield "event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(REFRESH)
            if await request.is_disconnected():
                return
            history = await anyio.to_thread.run_sync(_read, ui, name)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
