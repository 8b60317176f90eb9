"""The request log over HTTP, for the dashboard: `/mlxgw/requests?after=ID` (rows newer than the last
one the page has) and `/mlxgw/stats?since=1h` (totals and chart series, SQL aggregates). The same
queries as `mlxgw log` and `mlxgw stats`.

Who may read them: a caller with a client key, or, while no key exists, one on this machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from mlxgw.errors import GatewayError, MlxgwError
from mlxgw.server.appkeys import STATE
from mlxgw.server.auth import require_client_key
from mlxgw.server.guard import loopback_peer
from mlxgw.store import request_log
from mlxgw.store.tables import db, utcnow

DEFAULT_ROWS = 50
MAX_ROWS = 500

T = TypeVar("T")


def require_reader(request: web.Request) -> None:
    """A client key once any exists (as for /v1); without keys, callers on this machine only."""
    if request.app[STATE].client_keys:
        require_client_key(request)
    elif not loopback_peer(request):
        raise GatewayError("permission", "the request log is shown only on this machine until client keys exist")


async def _query(run: Callable[[], T]) -> T:
    """A store query off the event loop: a store another process keeps busy must not stall requests."""

    def on_thread() -> T:
        try:
            return run()
        finally:
            db.obj.close()  # this worker thread's connection

    return await asyncio.get_running_loop().run_in_executor(None, on_thread)


def _int_param(request: web.Request, name: str, default: int, maximum: int | None = None) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise GatewayError("invalid_request", f"{name} must be a whole number 0 or more, not {text!r}", param=name)
    value = int(text)
    return min(value, maximum) if maximum is not None else value


async def requests(request: web.Request) -> web.Response:
    """The newest rows (`limit`, default 50) with an id above `after` (default 0), oldest first."""
    require_reader(request)
    after = _int_param(request, "after", 0)
    limit = _int_param(request, "limit", DEFAULT_ROWS, MAX_ROWS)
    rows = await _query(lambda: [request_log.as_json(r) for r in request_log.tail(limit, after_id=after)])
    return web.json_response({"requests": rows, "last_id": rows[-1]["id"] if rows else after})


async def stats(request: web.Request) -> web.Response:
    """Per-backend totals since `since` (default 1h) and series per time bucket, model and backend."""
    require_reader(request)
    since = request.query.get("since", "1h")
    try:
        window = request_log.parse_window(since)
    except MlxgwError:
        raise GatewayError(
            "invalid_request", f"since must be a number and s, m, h or d (e.g. 30m, 1h, 7d), not {since!r}", param="since"
        ) from None
    bucket_s = request_log.bucket_for(window)
    start = utcnow() - window

    def run() -> dict:
        return {
            "since": since,
            "start": start.isoformat(timespec="seconds") + "Z",
            "bucket_s": bucket_s,
            "totals": request_log.counts(start),
            "backends": request_log.summary(start),
            "series": request_log.series(start, bucket_s),
        }

    return web.json_response(await _query(run))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/mlxgw/requests", requests)
    app.router.add_get("/mlxgw/stats", stats)
