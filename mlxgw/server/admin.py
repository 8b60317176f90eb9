"""Endpoints for mlxgw's own CLI (`models`, `status`): loopback callers only."""

from __future__ import annotations

import os
import time

from aiohttp import web

from mlxgw import __version__
from mlxgw.errors import GatewayError
from mlxgw.server.guard import loopback_peer
from mlxgw.server.keys import DISPATCHER, SETTINGS, STARTED, STATE
from mlxgw.server.routes import backend_detail


def _loopback_only(request: web.Request) -> None:
    if not loopback_peer(request):
        raise GatewayError("permission", "mlxgw's admin endpoints answer only on this machine")


def _local(request: web.Request):
    local = request.app[STATE].registry.local
    if local is None:
        raise GatewayError("unavailable", "this gateway runs no local backend")
    return local


async def models(request: web.Request) -> web.Response:
    _loopback_only(request)
    local = _local(request)
    configured = request.app[STATE].routes.local_models
    status = await local.status()
    return web.json_response({"configured": sorted(configured), "worker": status})


async def load(request: web.Request) -> web.Response:
    _loopback_only(request)
    name = request.match_info["name"]
    return web.json_response(await _local(request).load(name))


async def unload(request: web.Request) -> web.Response:
    _loopback_only(request)
    name = request.match_info["name"]
    return web.json_response({"name": name, "result": await _local(request).unload(name)})


async def status(request: web.Request) -> web.Response:
    _loopback_only(request)
    app = request.app
    settings = app[SETTINGS]
    local = app[STATE].registry.local
    return web.json_response(
        {
            "running": True,
            "pid": os.getpid(),
            "version": __version__,
            "host": settings.server.host,
            "port": settings.server.port,
            "uptime_s": round(time.monotonic() - app[STARTED], 1),
            "breakers": app[DISPATCHER].breakers.snapshot(),
            # Every configured backend, even those not used yet, with key problems: what /health
            # shows only to key holders, for `mlxgw status` whatever the keys.
            "backends": backend_detail(app)["backends"],
            "local": await local.status() if local is not None else None,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/mlxgw/status", status)
    app.router.add_get("/mlxgw/models", models)
    app.router.add_post("/mlxgw/models/{name:.+}/load", load)
    app.router.add_post("/mlxgw/models/{name:.+}/unload", unload)
