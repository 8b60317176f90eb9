"""Answering a chat request in the client's protocol, streamed or whole, and logging it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

from aiohttp import web

from mlxgw.backends.base import Item, RawFrame
from mlxgw.canonical import ChatRequest, collect
from mlxgw.dispatch.dispatcher import AttemptRecord, Opened
from mlxgw.errors import GatewayError
from mlxgw.server.appkeys import DISPATCHER, REQUEST_LOG, STATE
from mlxgw.server.keepalive import KeepAlive
from mlxgw.server.ledger import Ledger
from mlxgw.server.middleware import TRIED, internal_error, request_id, wire_for
from mlxgw.server.request_body import read_json
from mlxgw.wires.base import StreamRenderer, Wire

log = logging.getLogger("mlxgw.server")

SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no"}


def _answer_headers(request: web.Request, opened: Opened, attempts: list[AttemptRecord]) -> dict[str, str]:
    rid = request_id(request)
    return {
        "request-id": rid,
        "x-request-id": rid,
        "x-mlxgw-backend": f"{opened.backend}:{opened.model}",
        "x-mlxgw-attempts": str(len(attempts)),
    }


async def chat(request: web.Request) -> web.StreamResponse:
    wire = wire_for(request)
    ledger = Ledger(request, wire.name)
    request[TRIED] = ledger.attempts
    try:
        body = await read_json(request)
        creq = wire.parse_request(body, request.headers)
        ledger.model, ledger.stream = creq.model, creq.stream
        dispatcher = request.app[DISPATCHER]
        if creq.stream:
            return await _stream(request, wire, creq, dispatcher.open(creq, ledger.attempts), ledger)
        opened = await dispatcher.open(creq, ledger.attempts)
        try:
            return _whole(request, wire, creq, opened, ledger)
        finally:
            await opened.aclose()
    except GatewayError as err:
        ledger.failed(err, before_first_byte=True)
        raise
    except asyncio.CancelledError:
        ledger.error_kind = ledger.error_kind or "client_disconnected"
        raise
    finally:
        row = ledger.row()
        request.app[REQUEST_LOG].add(row)
        # DEBUG: the request log in the store is the per-request record (`mlxgw log -f` follows it);
        # an INFO line per request would cost more than the gateway's own work on a small answer.
        log.debug(
            "%s %s %s → %s %s %.0f ms%s", row["request_id"], row["protocol"], row["requested_model"] or "?",
            f"{row['backend']}:{row['model']}" if row["backend"] else "-", row["status"], row["latency_ms"],
            f" ({row['error_kind']})" if row["error_kind"] else "",
        )


def _whole(request: web.Request, wire: Wire, creq: ChatRequest, opened: Opened, ledger: Ledger) -> web.Response:
    headers = _answer_headers(request, opened, ledger.attempts)
    for item in opened.head:
        ledger.observe(item)
    ledger.sent_first_byte()
    raw = [item for item in opened.head if isinstance(item, RawFrame)]
    if raw:
        headers.update(raw[0].headers)
        return web.Response(body=raw[0].data, status=200, headers=headers, content_type="application/json")
    response = collect([item for item in opened.head if not isinstance(item, RawFrame)])
    body = wire.render_response(response, creq.model, request_id(request))
    return web.json_response(body, headers=headers)


async def _stream(
    request: web.Request, wire: Wire, creq: ChatRequest, opening: Awaitable[Opened], ledger: Ledger
) -> web.StreamResponse:
    """Wait for the dispatcher to open an answer, keeping the client alive meanwhile, then relay it."""
    rid = request_id(request)
    renderer = wire.stream_renderer(creq.model, rid, include_usage=creq.include_usage)
    interval = request.app[STATE].settings.server.keepalive_s
    keepalive = KeepAlive(request, interval, renderer.ping, {**SSE_HEADERS, "request-id": rid, "x-request-id": rid})
    try:
        opened = await keepalive.wait(opening)
    except ConnectionError:
        if keepalive.response is None:
            raise  # not the client's connection: nothing was written to it yet
        ledger.error_kind = "client_disconnected"
        return keepalive.response
    except Exception as exc:
        if keepalive.response is None:
            raise  # nothing sent yet: the real HTTP status
        # The keep-alives committed a 200 before any backend answered: the failure is an error event.
        if isinstance(exc, GatewayError):
            err = exc
        else:
            log.exception("stream %s broke before its answer started", rid)
            err = internal_error()
        ledger.failed(err, before_first_byte=False)
        with contextlib.suppress(ConnectionError):
            await keepalive.response.write(renderer.error(err))
            await keepalive.response.write_eof()
        return keepalive.response
    try:
        response = await keepalive.start(_answer_headers(request, opened, ledger.attempts))
        return await _relay(request, response, renderer, opened, ledger, keepalive)
    finally:
        keepalive.stop()
        await opened.aclose()


async def _relay(
    request: web.Request, response: web.StreamResponse, renderer: StreamRenderer, opened: Opened, ledger: Ledger, keepalive: KeepAlive
) -> web.StreamResponse:
    passthrough = False

    async def send(item: Item) -> None:
        nonlocal passthrough
        ledger.observe(item)
        if isinstance(item, RawFrame):
            passthrough = True
            data = item.data
        else:
            data = renderer.render(item)
        if data:
            await response.write(data)
            keepalive.wrote()
            ledger.sent_first_byte()

    failure: GatewayError | None = None
    try:
        for item in opened.head:
            await send(item)
        async for item in opened.tail:
            await send(item)
        if not passthrough:
            await response.write(renderer.close())
    except GatewayError as err:
        log.warning("stream %s failed after its first byte: %s", request_id(request), err.message)
        failure = err
    except ConnectionError:
        ledger.error_kind = "client_disconnected"
        log.info("client went away during %s; upstream cancelled", request_id(request))
        return response
    except Exception:
        # A gateway bug: the status line is sent, so the stream ends in its own protocol; the
        # traceback goes to the daemon's log, never to the client.
        log.exception("stream %s broke after its first byte", request_id(request))
        failure = internal_error()
    if failure is not None:
        ledger.failed(failure, before_first_byte=False)
        await response.write(renderer.error(failure))
    keepalive.stop()
    await response.write_eof()
    return response
