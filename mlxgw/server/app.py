"""The app factory: every server (serve, tests, benchmarks) is built here."""

from __future__ import annotations

import time

from aiohttp import web

from mlxgw import __version__
from mlxgw.config import Settings
from mlxgw.server.keys import SETTINGS, STARTED, WORKSPACE
from mlxgw.workspace import Workspace


async def health(request: web.Request) -> web.Response:
    app = request.app
    return web.json_response(
        {"status": "ok", "version": __version__, "uptime_s": round(time.monotonic() - app[STARTED], 3)}
    )


def create_app(settings: Settings, *, workspace: Workspace) -> web.Application:
    app = web.Application(client_max_size=int(settings.server.max_request_mb * 1024 * 1024))
    app[SETTINGS] = settings
    app[WORKSPACE] = workspace
    app[STARTED] = time.monotonic()
    app.router.add_get("/health", health)
    return app
