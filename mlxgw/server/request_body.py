"""Reading a request's body: within [server] body_timeout_s and max_request_mb, as JSON, or a
clear error in the caller's protocol."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from mlxgw.errors import GatewayError
from mlxgw.server.appkeys import SETTINGS, STATE


async def read_body(request: web.Request) -> bytes:
    """The request body, read within [server] body_timeout_s: a body that trickles is cut off."""
    limit = request.app[STATE].settings.server.body_timeout_s
    try:
        async with asyncio.timeout(limit):
            return await request.read()
    except TimeoutError:
        raise GatewayError(
            "timeout", f"the request body did not arrive within {limit:g} s ([server] body_timeout_s)", status=408
        ) from None


async def read_json(request: web.Request) -> object:
    """The request body as JSON, or a clear 400/413."""
    try:
        raw = await read_body(request)
    except web.HTTPRequestEntityTooLarge:
        limit_mb = request.app[SETTINGS].server.max_request_mb
        raise GatewayError("request_too_large", f"request body exceeds the gateway's limit of {limit_mb:g} MB") from None
    if not raw.strip():
        raise GatewayError("invalid_request", "request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise GatewayError("invalid_request", "request body is not valid UTF-8") from None
    except ValueError as exc:
        raise GatewayError("invalid_request", f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise GatewayError("invalid_request", "request body is nested too deeply") from None
