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
from mlxgw.server.appkeys import DISPATCHER, METRICS, REQUEST_LOG, STATE
from mlxgw.server.auth import admit
from mlxgw.server.keepalive import KeepAlive
from mlxgw.server.ledger import Ledger
from mlxgw.server.middleware import OVER_BUDGET, TRIED, internal_error, request_id, wire_for
from mlxgw.server.request_body import read_json
from mlxgw.server.responses import Turn
from mlxgw.wires import responses
from mlxgw.wires.base import StreamRenderer, Wire

log = logging.getLogger("mlxgw.server")

SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no"}


def _answer_headers(request: web.Request, creq: ChatRequest, opened: Opened, attempts: list[AttemptRecord]) -> dict[str, str]:
    rid = request_id(request)
    headers = {
        "request-id": rid,
        "x-request-id": rid,
        "x-mlxgw-backend": f"{opened.backend}:{opened.model}",
        "x-mlxgw-attempts": str(len(attempts)),
    }
    if creq.hosted_tools and not _passthrough(opened):
        # Only a backend that speaks Responses itself runs hosted tools; the others answered without them.
        log.debug("%s: %s:%s cannot run hosted tools %s; left out", rid, opened.backend, opened.model, creq.hosted_tools)
        headers["x-mlxgw-dropped-tools"] = ", ".join(creq.hosted_tools)
    return headers


def _passthrough(opened: Opened) -> bool:
    """Whether the backend relays its own bytes (it speaks the client's protocol) rather than events."""
    return any(isinstance(item, RawFrame) for item in opened.head)


async def _open(dispatcher, creq: ChatRequest, ledger: Ledger, turn: Turn | None) -> Opened:
    opened = await dispatcher.open(
        creq, ledger.attempts, over_budget=ledger.request.get(OVER_BUDGET), client=ledger.client_key
    )
    if turn is not None:
        try:
            turn.check(_passthrough(opened))
        except GatewayError:
            await opened.aclose()
            raise
    return opened


async def chat(request: web.Request) -> web.StreamResponse:
    wire = wire_for(request)
    ledger = Ledger(request, wire.name, request.app[STATE].settings.pricing)
    request[TRIED] = ledger.attempts
    try:
        body = await read_json(request)
        # A Responses client may continue a conversation mlxgw stored, and its answer may be kept.
        turn = await Turn.begin(request, body) if wire is responses else None
        creq = wire.parse_request(turn.body if turn else body, request.headers)
        ledger.model, ledger.stream = creq.model, creq.stream
        await admit(request)
        opening = _open(request.app[DISPATCHER], creq, ledger, turn)
        if creq.stream:
            return await _stream(request, wire, creq, opening, ledger, turn)
        opened = await opening
        try:
            return _whole(request, wire, creq, opened, ledger, turn)
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
        request.app[METRICS].observe(ledger)
        # DEBUG: the request log in the store is the per-request record (`mlxgw log -f` follows it);
        # an INFO line per request would cost more than the gateway's own work on a small answer.
        log.debug(
            "%s %s %s → %s %s %.0f ms%s", row["request_id"], row["protocol"], row["requested_model"] or "?",
            f"{row['backend']}:{row['model']}" if row["backend"] else "-", row["status"], row["latency_ms"],
            f" ({row['error_kind']})" if row["error_kind"] else "",
        )


def _whole(
    request: web.Request, wire: Wire, creq: ChatRequest, opened: Opened, ledger: Ledger, turn: Turn | None
) -> web.Response:
    headers = _answer_headers(request, creq, opened, ledger.attempts)
    for item in opened.head:
        ledger.observe(item)
    ledger.sent_first_byte()
    raw = [item for item in opened.head if isinstance(item, RawFrame)]
    if raw:
        headers.update(raw[0].headers)
        return web.Response(body=raw[0].data, status=200, headers=headers, content_type="application/json")
    response = collect([item for item in opened.head if not isinstance(item, RawFrame)])
    if turn is None:
        return web.json_response(wire.render_response(response, creq.model, request_id(request)), headers=headers)
    body = responses.render_response(response, creq.model, request_id(request), echo=turn.echo)
    turn.keep(body)
    return web.json_response(body, headers=headers)


async def _stream(
    request: web.Request, wire: Wire, creq: ChatRequest, opening: Awaitable[Opened], ledger: Ledger, turn: Turn | None
) -> web.StreamResponse:
    """Wait for the dispatcher to open an answer, keeping the client alive meanwhile, then relay it."""
    rid = request_id(request)
    if turn is None:
        renderer = wire.stream_renderer(creq.model, rid, include_usage=creq.include_usage)
    else:
        renderer = responses.StreamRenderer(creq.model, rid, echo=turn.echo)
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
        response = await keepalive.start(_answer_headers(request, creq, opened, ledger.attempts))
        return await _relay(request, response, renderer, opened, ledger, keepalive, turn)
    finally:
        keepalive.stop()
        await opened.aclose()


async def _relay(
    request: web.Request,
    response: web.StreamResponse,
    renderer: StreamRenderer,
    opened: Opened,
    ledger: Ledger,
    keepalive: KeepAlive,
    turn: Turn | None,
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
            if turn is not None and renderer.response is not None:
                # Kept before the client reads it: its next turn may name this response at once.
                turn.keep(renderer.response)
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
