"""Request ids, and errors in the caller's own protocol — never a traceback."""

from __future__ import annotations

import logging
import math
import secrets

from aiohttp import web

from mlxgw.errors import GatewayError, OverLimit, UpstreamError
from mlxgw.wires import client_wire
from mlxgw.wires.base import Wire

log = logging.getLogger("mlxgw.server")

REQUEST_ID = web.RequestKey("request_id", str)
TRIED = web.RequestKey("tried", list)  # the dispatcher's attempt records, for the error headers
# A streamed answer whose status line and headers are sent: no other answer may follow.
ANSWER_STARTED = web.RequestKey("answer_started", web.StreamResponse)
CLIENT_KEY = web.RequestKey("client_key", str)  # the name of the client key presented (auth sets it)
# The budget a limited client key is over (auth finds it): only a local model may answer it.
OVER_BUDGET = web.RequestKey("over_budget", OverLimit)
MAX_RETRY_AFTER_S = 86400.0
SDK_RETRY_AFTER_MAX_S = 60.0


def wire_for(request: web.Request) -> Wire:
    """The protocol the client of `request` speaks."""
    return client_wire(request.path, request.headers)


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
    elif isinstance(err, OverLimit):
        headers["retry-after"] = str(max(1, math.ceil(err.retry_after)))
        if err.retry_after > SDK_RETRY_AFTER_MAX_S:
            # The SDKs wait out a Retry-After of a minute at most, else retry on their own backoff:
            # retries that could only be refused again.
            headers["x-should-retry"] = "false"
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
