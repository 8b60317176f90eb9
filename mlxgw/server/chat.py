"""Answering a chat request in the client's protocol, streamed or whole."""

from __future__ import annotations

import json
import logging
from types import ModuleType

from aiohttp import web

from mlxgw.backends.base import Item, RawFrame
from mlxgw.canonical import ChatRequest, collect
from mlxgw.dispatcher import Opened
from mlxgw.errors import GatewayError
from mlxgw.server.keys import DISPATCHER
from mlxgw.server.middleware import request_id, wire_for

log = logging.getLogger("mlxgw.server")

SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no"}


async def read_json(request: web.Request) -> object:
    """The request body as JSON, or a clear 400/413."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit_mb = request.app._client_max_size / (1024 * 1024)
        raise GatewayError("request_too_large", f"request body exceeds the gateway's limit of {limit_mb:g} MB") from None
    if not raw.strip():
        raise GatewayError("invalid_request", "request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise GatewayError("invalid_request", "request body is not valid UTF-8") from None
    except ValueError as exc:
        raise GatewayError("invalid_request", f"request body is not valid JSON: {exc}") from None


def _answer_headers(request: web.Request, opened: Opened) -> dict[str, str]:
    rid = request_id(request)
    return {
        "request-id": rid,
        "x-request-id": rid,
        "x-mlxgw-backend": f"{opened.backend}:{opened.model}",
        "x-mlxgw-attempts": str(len(opened.attempts)),
    }


async def chat(request: web.Request) -> web.StreamResponse:
    wire = wire_for(request)
    body = await read_json(request)
    creq = wire.parse_request(body, request.headers)
    opened = await request.app[DISPATCHER].open(creq)
    try:
        if creq.stream:
            return await _stream(request, wire, creq, opened)
        return _whole(request, wire, creq, opened)
    finally:
        await opened.aclose()


def _whole(request: web.Request, wire: ModuleType, creq: ChatRequest, opened: Opened) -> web.Response:
    headers = _answer_headers(request, opened)
    raw = [item for item in opened.head if isinstance(item, RawFrame)]
    if raw:
        headers.update(raw[0].headers)
        return web.Response(body=raw[0].data, status=200, headers=headers, content_type="application/json")
    response = collect([item for item in opened.head if not isinstance(item, RawFrame)])
    body = wire.render_response(response, creq.model, request_id(request))
    return web.json_response(body, headers=headers)


async def _stream(request: web.Request, wire: ModuleType, creq: ChatRequest, opened: Opened) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **_answer_headers(request, opened)})
    await response.prepare(request)
    renderer = wire.StreamRenderer(creq.model, request_id(request), include_usage=creq.include_usage)
    passthrough = False

    def encode(item: Item) -> bytes:
        nonlocal passthrough
        if isinstance(item, RawFrame):
            passthrough = True
            return item.data
        return renderer.render(item)

    try:
        for item in opened.head:
            await _write(response, encode(item))
        async for item in opened.tail:
            await _write(response, encode(item))
        if not passthrough:
            await _write(response, renderer.close())
    except GatewayError as err:
        log.warning("stream %s failed after its first byte: %s", request_id(request), err.message)
        await _write(response, renderer.error(err))
    except ConnectionError:
        log.info("client went away during %s; upstream cancelled", request_id(request))
        return response
    await response.write_eof()
    return response


async def _write(response: web.StreamResponse, data: bytes) -> None:
    if data:
        await response.write(data)
