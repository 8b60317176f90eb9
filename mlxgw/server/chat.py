"""Answering a chat request in the client's protocol, streamed or whole, and logging it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable
from types import ModuleType

from aiohttp import web

from mlxgw.backends.base import Item, RawFrame
from mlxgw.canonical import ChatRequest, Start, Usage, collect, merge_usage
from mlxgw.dispatcher import AttemptRecord, Opened
from mlxgw.errors import GatewayError
from mlxgw.server.guard import read_body
from mlxgw.server.keepalive import KeepAlive
from mlxgw.server.keys import DISPATCHER, REQUEST_LOG, SETTINGS, STATE
from mlxgw.server.middleware import TRIED, internal_error, protocol_name, request_id, wire_for

log = logging.getLogger("mlxgw.server")

SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no"}


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


class Ledger:
    """What the request log keeps of one request, filled in as it is answered."""

    def __init__(self, request: web.Request, protocol: str) -> None:
        self.request = request
        self.protocol = protocol
        self.started = time.monotonic()
        self.first_byte: float | None = None
        self.model = ""
        self.stream = False
        self.attempts: list[AttemptRecord] = []
        self.usage = Usage()
        self.status = 200
        self.error_kind: str | None = None

    def observe(self, item: Item) -> None:
        for ev in item.events if isinstance(item, RawFrame) else (item,):
            if isinstance(ev, Start) and ev.input_tokens is not None:
                self.usage.input_tokens = ev.input_tokens
            elif isinstance(ev, Usage):
                merge_usage(self.usage, ev)

    def sent_first_byte(self) -> None:
        if self.first_byte is None:
            self.first_byte = time.monotonic()

    def failed(self, err: GatewayError, *, before_first_byte: bool) -> None:
        self.error_kind = err.code or err.kind
        if before_first_byte:
            self.status = err.status

    def row(self) -> dict:
        served = next((a for a in reversed(self.attempts) if a.error is None), None)
        ms = 1000.0
        return {
            "request_id": request_id(self.request),
            "protocol": self.protocol,
            "requested_model": self.model,
            "backend": served.backend if served else None,
            "model": served.model if served else None,
            "attempts": json.dumps([a.as_json() for a in self.attempts]),
            "fallbacks": max(0, len(self.attempts) - 1),
            "status": self.status,
            "stream": self.stream,
            "latency_ms": round((time.monotonic() - self.started) * ms, 2),
            "ttft_ms": round((self.first_byte - self.started) * ms, 2) if self.first_byte else None,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "error_kind": self.error_kind,
        }


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
    ledger = Ledger(request, protocol_name(wire))
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


def _whole(request: web.Request, wire: ModuleType, creq: ChatRequest, opened: Opened, ledger: Ledger) -> web.Response:
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
    request: web.Request, wire: ModuleType, creq: ChatRequest, opening: Awaitable[Opened], ledger: Ledger
) -> web.StreamResponse:
    """Wait for the dispatcher to open an answer, keeping the client alive meanwhile, then relay it."""
    rid = request_id(request)
    renderer = wire.StreamRenderer(creq.model, rid, include_usage=creq.include_usage)
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
    request: web.Request, response: web.StreamResponse, renderer, opened: Opened, ledger: Ledger, keepalive: KeepAlive
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
