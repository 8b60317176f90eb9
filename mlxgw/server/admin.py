"""Endpoints for mlxgw's own CLI (`models`, `status`): loopback callers only; the status also to a
caller with a client key (the dashboard, opened from another machine)."""

from __future__ import annotations

from aiohttp import web

from mlxgw.errors import GatewayError
from mlxgw.server import status
from mlxgw.server.appkeys import STATE
from mlxgw.server.auth import has_valid_key
from mlxgw.server.guard import loopback_peer


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


async def full_status(request: web.Request) -> web.Response:
    if not has_valid_key(request):
        _loopback_only(request)
    return web.json_response(await status.full(request.app))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/mlxgw/status", full_status)
    app.router.add_get("/mlxgw/models", models)
    app.router.add_post("/mlxgw/models/{name:.+}/load", load)
    app.router.add_post("/mlxgw/models/{name:.+}/unload", unload)
