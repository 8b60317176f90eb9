"""Request ids, client-key auth, and errors in the caller's own protocol — never a traceback."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from types import ModuleType

from aiohttp import web

from mlxgw.errors import GatewayError, UpstreamError
from mlxgw.protocols import anthropic as anthropic_wire
from mlxgw.protocols import openai as openai_wire
from mlxgw.server.keys import SETTINGS, STATE
from mlxgw.store import client_keys
from mlxgw.store.models import db

log = logging.getLogger("mlxgw.server")

REQUEST_ID = web.RequestKey("request_id", str)
TRIED = web.RequestKey("tried", list)  # the dispatcher's attempt records, for the error headers
# A streamed answer whose status line and headers are sent: no other answer may follow.
ANSWER_STARTED = web.RequestKey("answer_started", web.StreamResponse)
MAX_RETRY_AFTER_S = 86400.0


def wire_for(request: web.Request) -> ModuleType:
    """The protocol a client speaks, judged by the path it called (or, for shared paths, its headers)."""
    path = request.path
    if path.startswith("/v1/messages") or (path.startswith("/v1/models") and "anthropic-version" in request.headers):
        return anthropic_wire
    return openai_wire


def protocol_name(wire: ModuleType) -> str:
    return "anthropic" if wire is anthropic_wire else "openai"


def request_id(request: web.Request) -> str:
    return request[REQUEST_ID]


def error_response(request: web.Request, err: GatewayError) -> web.Response:
    rid = request.get(REQUEST_ID) or new_request_id()
    status, body = wire_for(request).render_error(err, rid)
    headers = {"request-id": rid, "x-request-id": rid}
    if isinstance(err, UpstreamError):
        tries = sum(a.tries for a in request.get(TRIED, ()))
        if tries > 1 or not err.retryable:
            # The gateway already retried or failed over (or nothing would help): an SDK retrying
            # too would only multiply the load. After a single try the SDK's own policy decides.
            headers["x-should-retry"] = "false"
        if err.retry_after is not None:
            headers["retry-after"] = str(max(1, round(min(err.retry_after, MAX_RETRY_AFTER_S))))
    return web.json_response(body, status=status, headers=headers)


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


_HTTP_KINDS = {404: "not_found", 405: "invalid_request", 413: "request_too_large", 400: "invalid_request"}


@web.middleware
async def errors(request: web.Request, handler) -> web.StreamResponse:
    request[REQUEST_ID] = new_request_id()
    try:
        response = await handler(request)
    except Exception as exc:
        if (started := request.get(ANSWER_STARTED)) is not None:
            # A second status line written into the open body would corrupt it: end the answer as it is.
            log.error("%s %s failed after its answer had started", request.method, request.path, exc_info=exc)
            return started
        if isinstance(exc, web.HTTPException) and exc.status < 400:
            raise
        return error_response(request, _as_gateway_error(request, exc))
    if not response.prepared:
        response.headers.setdefault("request-id", request[REQUEST_ID])
        response.headers.setdefault("x-request-id", request[REQUEST_ID])
    return response


def _as_gateway_error(request: web.Request, exc: Exception) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, web.HTTPException):
        kind = _HTTP_KINDS.get(exc.status, "invalid_request" if exc.status < 500 else "api_error")
        message = {
            404: f"no such endpoint: {request.method} {request.path}",
            405: f"method {request.method} is not allowed on {request.path}",
            413: "request body too large",
        }.get(exc.status, exc.reason)
        return GatewayError(kind, message, status=exc.status)
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return internal_error()


def internal_error() -> GatewayError:
    """What a client is told of a gateway bug: the traceback stays in the daemon's log."""
    return GatewayError("api_error", "internal gateway error (see the daemon's log)")


@web.middleware
async def auth(request: web.Request, handler) -> web.StreamResponse:
    """Once any client key exists, every /v1 request must present one. A daemon bound to a network
    address refuses /v1 requests while it has none (revoking the last key must not open it up)."""
    if request.path.startswith("/v1/"):
        state = request.app[STATE]
        if state.client_keys:
            presented = presented_key(request)
            if not presented:
                raise GatewayError("authentication", "missing API key: send `Authorization: Bearer <key>` or `x-api-key`")
            name = client_keys.match(presented, state.client_keys)
            if name is None:
                raise GatewayError("authentication", "invalid API key")
            _note_use(state.key_last_used, name)
        elif request.app[SETTINGS].server.needs_keys:
            raise GatewayError(
                "authentication",
                f"this gateway listens on {request.app[SETTINGS].server.host}, a network address, and has no client "
                "keys, so it answers no one: create one with `mlxgw keys create NAME` and send it as "
                "`Authorization: Bearer <key>` or `x-api-key`",
            )
    return await handler(request)


def presented_key(request: web.Request) -> str:
    """The client key in `x-api-key` or `Authorization: Bearer`, or ""."""
    presented = request.headers.get("x-api-key") or ""
    bearer = request.headers.get("authorization", "")
    if not presented and bearer[:7].lower() == "bearer ":
        presented = bearer[7:].strip()
    return presented


def has_valid_key(request: web.Request) -> bool:
    known = request.app[STATE].client_keys
    presented = presented_key(request)
    return bool(known and presented and client_keys.match(presented, known) is not None)


KEY_USE_RESOLUTION_S = 60.0  # `keys list` shows last use to the minute: no write per request


def _note_use(last_used: dict[str, float], name: str) -> None:
    now = time.monotonic()
    if now - last_used.get(name, -KEY_USE_RESOLUTION_S) >= KEY_USE_RESOLUTION_S:
        last_used[name] = now
        # Off the event loop: a store another process keeps busy would hold every request up to
        # SQLite's busy timeout, then fail this one; the last use is bookkeeping, not the answer.
        asyncio.get_running_loop().run_in_executor(None, _touch, name)


def _touch(name: str) -> None:
    try:
        client_keys.touch(name)
    except Exception as exc:
        log.warning("could not record the use of client key %r: %s", name, exc)
    finally:
        db.obj.close()  # this worker thread's connection
