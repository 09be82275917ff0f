"""``create_app(settings)``: the hub as an ASGI app (FastAPI), built fresh for each caller.

Routes (OpenAPI at ``/openapi.json``, docs at ``/docs``): ``/healthz``, ``/metrics``,
``/api/v1/auth/*`` (:mod:`fedbox.hub.routes_auth`), ``/api/v1/files/*``, ``/move``,
``/copy``, ``/list`` (:mod:`fedbox.hub.routes_files`), ``/api/v1/batch``
(:mod:`fedbox.hub.routes_batch`), ``/api/v1/uploads/*``
(:mod:`fedbox.hub.routes_uploads`), ``/api/v1/changes`` and its websocket
(:mod:`fedbox.hub.routes_changes`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from fedbox.hub.access import AccessRules
from fedbox.hub.blobs import open_blobs
from fedbox.hub.context import ChangeBus, Hub, hub_of
from fedbox.hub.identity import (
    LoginCodes,
    RateLimiter,
    Sessions,
    TokenIssuer,
    load_secret,
)
from fedbox.hub.index import FileIndex, Quota
from fedbox.hub.limits import HeaderLimit
from fedbox.hub.metrics import Metrics, MetricsMiddleware
from fedbox.hub.migrate import ensure_current
from fedbox.hub.notify import ChangeWatcher
from fedbox.hub.refusals import REFUSALS, refusal
from fedbox.hub.routes_auth import router as auth_router
from fedbox.hub.routes_batch import router as batch_router
from fedbox.hub.routes_changes import router as changes_router
from fedbox.hub.routes_files import router as files_router
from fedbox.hub.routes_uploads import router as uploads_router
from fedbox.hub.rule_news import RuleListings
from fedbox.hub.schema import open_engine
from fedbox.hub.settings import HubSettings
from fedbox.hub.tail import ChangeTail
from fedbox.hub.uploads import Uploads

__all__ = ["build_hub", "create_app"]


def build_hub(settings: HubSettings) -> Hub:
    """The hub's parts over its database and blobs (the CLI's admin commands use this too)."""
    settings.data.mkdir(parents=True, exist_ok=True)
    engine = open_engine(settings.database_url)
    ensure_current(engine)
    index = FileIndex(
        engine,
        open_blobs(settings.blobs_location, settings.blobs_options),
        Quota(bytes=settings.quota_bytes, files=settings.quota_files),
    )
    secret = settings.secret or load_secret(engine, settings.data / "hub.key")
    metrics = Metrics()
    access = AccessRules(index)
    tail = ChangeTail(index, on_read=lambda: metrics.log_read("tail"), on_rows=access.observe)
    hub = Hub(
        settings=settings,
        index=index,
        access=access,
        tokens=TokenIssuer(secret, settings.access_ttl),
        sessions=Sessions(engine, settings.refresh_ttl, settings.session_check),
        codes=LoginCodes(engine, settings.code_ttl, settings.code_attempts),
        per_email=RateLimiter(engine, "email", settings.login_per_email, settings.login_window),
        per_address=RateLimiter(
            engine, "address", settings.login_per_address, settings.login_window
        ),
        uploads=Uploads(engine, index, settings.upload_expiry),
        tail=tail,
        bus=ChangeBus(tail, access),
        metrics=metrics,
        rule_listings=RuleListings(index, access),
    )
    index.subscribe(hub.bus.publish)
    return hub


def _error(status: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)


def _install_errors(app: FastAPI) -> None:
    async def refused(_r: Request, exc: Exception) -> JSONResponse:
        status, detail = refusal(exc) or (500, "internal error")
        if status == 401:
            return _error(status, detail, **{"WWW-Authenticate": "Bearer"})
        return _error(status, detail)

    for kind, _status in REFUSALS:
        app.add_exception_handler(kind, refused)


def create_app(settings: HubSettings) -> FastAPI:
    """A new hub app over ``settings`` (no module-level app: tests build one per temp dir)."""
    hub = build_hub(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub.bus.bind(asyncio.get_running_loop())
        watcher = ChangeWatcher(
            hub.index.engine, hub.index.head, hub.bus.wake, settings.feed_check, hub.sessions.forget
        )
        await run_in_threadpool(watcher.start)
        await run_in_threadpool(hub.uploads.expire)
        yield
        await run_in_threadpool(watcher.stop)
        hub.index.engine.dispose()

    app = FastAPI(title="fedbox hub", version="1", lifespan=lifespan)
    app.state.hub = hub
    _install_errors(app)
    app.include_router(auth_router)
    app.include_router(files_router)
    app.include_router(batch_router)
    app.include_router(changes_router)
    app.include_router(uploads_router)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, object]:
        return {"ok": True, "head": await run_in_threadpool(hub.index.head)}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def metrics(request: Request) -> str:
        state = hub_of(request)
        head = await run_in_threadpool(state.index.head)
        total = await run_in_threadpool(state.index.total_bytes)
        return state.metrics.render(head, total)

    app.add_middleware(MetricsMiddleware, metrics=hub.metrics)
    app.add_middleware(HeaderLimit)
    return app
