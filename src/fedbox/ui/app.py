"""The UI's ASGI app, built by :func:`create_app` (no module-level app: tests build one
per temp dir)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse, Response

from fedbox.store import Store, StoreIdentity, open_store
from fedbox.ui.context import UiContext, render
from fedbox.ui.pages import jobs, messages, overview, peers, runs
from fedbox.ui.security import AccessGuard
from fedbox.ui.settings import UiSettings

__all__ = ["PAGES", "STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
PAGES = (overview, runs, messages, peers, jobs)
"""The page modules, each with its ``router``, in the navigation's order."""


def create_app(settings: UiSettings, store: Store | None = None) -> FastAPI:
    """The UI for ``settings``' identity, over ``store`` (the caller's to close) or, when
    none is given and ``settings.root`` is set, a store the app opens when it starts and
    closes when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ui: UiContext = app.state.ui
        if ui.store is not None or settings.root is None:
            yield
            return
        identity = StoreIdentity(settings.email, settings.state_dir)
        ui.store = open_store(settings.root, identity=identity, **settings.storage_options)
        try:
            yield
        finally:
            ui.store.close()
            ui.store = None

    app = FastAPI(
        title="fedbox ui", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.ui = UiContext(settings, store)
    app.add_middleware(AccessGuard, settings=settings)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for page in PAGES:
        app.include_router(page.router)
    app.add_exception_handler(StarletteHTTPException, _error_page)
    return app


async def _error_page(request: Request, exc: Exception) -> Response:
    """Refusals as a page saying why (a script asking for JSON gets the text alone)."""
    assert isinstance(exc, StarletteHTTPException)
    if "text/html" not in request.headers.get("accept", ""):
        return PlainTextResponse(f"{exc.status_code}: {exc.detail}", status_code=exc.status_code)
    return render(
        request,
        "error.html",
        status_code=exc.status_code,
        page="",
        status=exc.status_code,
        detail=exc.detail,
    )
