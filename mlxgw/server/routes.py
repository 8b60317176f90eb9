"""The HTTP surface: chat in both protocols, token counting, the model list, health."""

from __future__ import annotations

import datetime as dt
import time

from aiohttp import web

from mlxgw import __version__
from mlxgw.protocols import anthropic as anthropic_wire
from mlxgw.server.chat import chat, read_json
from mlxgw.server.guard import loopback_peer
from mlxgw.server.keys import CATALOG, DISPATCHER, STARTED, STATE
from mlxgw.server.middleware import TRIED, has_valid_key, wire_for


async def count_tokens(request: web.Request) -> web.Response:
    """Counted by the first backend of the chain that can, by the dispatcher's rules for chat."""
    body = await read_json(request)
    creq = anthropic_wire.parse_count_tokens_request(body, request.headers)
    request[TRIED] = []
    return web.json_response({"input_tokens": await request.app[DISPATCHER].count_tokens(creq, request[TRIED])})


async def models(request: web.Request) -> web.Response:
    names = await request.app[CATALOG].listed(request.app[STATE].routes)
    created = int(time.time())
    if wire_for(request) is anthropic_wire:
        stamp = dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        data = [{"type": "model", "id": n, "display_name": n, "created_at": stamp} for n in names]
        return web.json_response(
            {"data": data, "has_more": False, "first_id": names[0] if names else None, "last_id": names[-1] if names else None}
        )
    return web.json_response(
        {"object": "list", "data": [{"id": n, "object": "model", "created": created, "owned_by": "mlxgw"} for n in names]}
    )


async def health(request: web.Request) -> web.Response:
    """Liveness for anyone; the backends, breakers and key problems (which can name local paths)
    only for a caller with a client key, or one on this machine while there are no keys."""
    app = request.app
    body: dict = {"status": "ok", "version": __version__}
    if has_valid_key(request) or (not app[STATE].client_keys and loopback_peer(request)):
        body["uptime_s"] = round(time.monotonic() - app[STARTED], 3)
        body.update(backend_detail(app))
    return web.json_response(body)


def backend_detail(app: web.Application) -> dict:
    """Every configured backend with its breaker and any key problem, and each local model's breaker."""
    state = app[STATE]
    breakers = app[DISPATCHER].breakers.snapshot()
    backends = {}
    for name in state.registry.names():
        entry: dict = {"breaker": breakers.get(name, {"state": "closed", "consecutive_failures": 0})}
        if name in state.registry.key_errors:
            entry["error"] = state.registry.key_errors[name]
        backends[name] = entry
    local_models = {key: b for key, b in breakers.items() if key.startswith("local:")}
    return {"backends": backends, "local_models": local_models}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", chat)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
