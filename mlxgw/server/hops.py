"""Requests that came through other mlxgw gateways (`x-mlxgw-hops`, sent by a backend of type
mlxgw): their count is set for the request's backends to pass on, and a request that went round too
many is refused, in the client's protocol, instead of looping until its deadline."""

from __future__ import annotations

from aiohttp import web

from mlxgw.backends.peer import HOPS, HOPS_HEADER, MAX_HOPS
from mlxgw.errors import GatewayError


@web.middleware
async def hops(request: web.Request, handler) -> web.StreamResponse:
    raw = request.headers.get(HOPS_HEADER, "").strip()
    count = int(raw) if raw.isdigit() else 0
    if count >= MAX_HOPS:
        raise GatewayError(
            "invalid_request",
            f"this request already came through {count} mlxgw gateways: a backend of type mlxgw leads back "
            "to a gateway on its own path (check its base_url)",
        )
    token = HOPS.set(count)
    try:
        return await handler(request)
    finally:
        HOPS.reset(token)
