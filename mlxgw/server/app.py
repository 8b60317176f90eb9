"""The app factory: every server (serve, tests, benchmarks) is built here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from mlxgw.backends.base import Backend
from mlxgw.backends.registry import Registry
from mlxgw.dispatch.dispatcher import Dispatcher
from mlxgw.server import activity, admin, auth, dashboard, guard, hops, middleware, responses, scrape
from mlxgw.server.appkeys import (
    CATALOG,
    DISPATCHER,
    METRICS,
    REQUEST_LOG,
    RESPONSES,
    SESSION,
    SETTINGS,
    STARTED,
    STATE,
)
from mlxgw.server.catalog import ModelCatalog
from mlxgw.server.endpoints import add_routes
from mlxgw.server.metrics import Metrics
from mlxgw.server.state import LiveState, watch
from mlxgw.settings import Settings
from mlxgw.store import credentials
from mlxgw.store.request_log import RequestLogWriter
from mlxgw.store.responses import ResponseStore
from mlxgw.workspace import Workspace


def create_app(
    settings: Settings,
    *,
    workspace: Workspace,
    local: Backend | None = None,
    backends: dict[str, Backend] | None = None,
    reload_interval_s: float = 1.0,
) -> web.Application:
    """Build the gateway. `local` replaces the MLX worker backend and `backends` adds or overrides
    named backends (tests and benchmarks inject theirs here); everything else comes from `settings`
    and the workspace's store."""
    app = web.Application(
        client_max_size=int(settings.server.max_request_mb * 1024 * 1024),
        middlewares=[middleware.errors, guard.guard, auth.auth, hops.hops],
    )
    app.on_response_prepare.append(guard.cors_headers)
    app[SETTINGS] = settings
    app[STARTED] = time.monotonic()
    app[METRICS] = Metrics()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300))
        local_backend = local if local is not None else _local_backend(workspace.settings, lambda: state.routes.local_models)
        registry = Registry(
            session, lambda name: credentials.get_key(name, workspace.vault), local=local_backend, extra=backends
        )

        def follow_local(settings: Settings) -> None:
            local_backend.configure(settings.local)

        # The MLX backend built here follows [local] live; an injected one keeps its own settings.
        state = LiveState(workspace, registry, on_settings=follow_local if local is None else None)
        state.load()
        app[SESSION] = session
        app[STATE] = state
        app[DISPATCHER] = Dispatcher(registry, lambda: state.routes, lambda: state.settings)
        app[CATALOG] = ModelCatalog(registry)
        writer = RequestLogWriter(
            retention_days=lambda: state.settings.server.request_log_days,
            replica=lambda: state.settings.server.replica or settings.server.replica_name,
        )
        writer.start()
        app[REQUEST_LOG] = writer
        stored = ResponseStore(retention_days=lambda: state.settings.server.responses_days)
        stored.start()
        app[RESPONSES] = stored
        watcher = asyncio.create_task(watch(state, reload_interval_s))
        yield
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await writer.close()
        await stored.close()
        await registry.close()
        await session.close()

    app.cleanup_ctx.append(resources)
    add_routes(app)
    responses.add_routes(app)
    admin.add_routes(app)
    scrape.add_routes(app)
    activity.add_routes(app)
    dashboard.add_routes(app)
    return app


def _local_backend(settings: Settings, models: Callable[[], dict[str, str]]):
    from mlxgw.backends.local import LocalBackend

    return LocalBackend(models=models, settings=settings.local)
