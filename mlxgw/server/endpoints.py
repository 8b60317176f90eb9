"""The HTTP surface: chat in every wire protocol, token counting, the model list, health."""

from __future__ import annotations

import datetime as dt
import time

from aiohttp import web

from mlxgw.server import status
from mlxgw.server.answer import chat
from mlxgw.server.appkeys import CATALOG, DISPATCHER, STATE
from mlxgw.server.auth import has_valid_key
from mlxgw.server.guard import loopback_peer
from mlxgw.server.middleware import TRIED, wire_for
from mlxgw.server.request_body import read_json
from mlxgw.wires import WIRES, anthropic


async def count_tokens(request: web.Request) -> web.Response:
    """Counted by the first backend of the chain that can, by the dispatcher's rules for chat."""
    body = await read_json(request)
    creq = anthropic.parse_count_tokens_request(body, request.headers)
    request[TRIED] = []
    return web.json_response({"input_tokens": await request.app[DISPATCHER].count_tokens(creq, request[TRIED])})


async def models(request: web.Request) -> web.Response:
    names = await request.app[CATALOG].listed(request.app[STATE].routes)
    created = int(time.time())
    if wire_for(request) is anthropic:
        stamp = dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        data = [{"type": "model", "id": n, "display_name": n, "created_at": stamp} for n in names]
        return web.json_response(
            {"data": data, "has_more": False, "first_id": names[0] if names else None, "last_id": names[-1] if names else None}
        )
    return web.json_response(
        {"object": "list", "data": [{"id": n, "object": "model", "created": created, "owned_by": "mlxgw"} for n in names]}
    )


async def health(request: web.Request) -> web.Response:
    """Liveness for anyone; the backends, breakers and key problems only for a caller with a
    client key, or one on this machine while there are no keys."""
    app = request.app
    body = status.liveness()
    if has_valid_key(request) or (not app[STATE].client_keys and loopback_peer(request)):
        body["uptime_s"] = status.uptime_s(app)
        body.update(status.backends(app))
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    for wire in WIRES.values():
        for path in wire.chat_paths:
            app.router.add_post(path, chat)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
