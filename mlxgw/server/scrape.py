"""`GET /metrics`: the app's metrics in Prometheus's text format, with the breakers and the local
worker read as they are at the scrape (the worker's `status()` starts nothing)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from mlxgw.server.appkeys import DISPATCHER, METRICS, STATE
from mlxgw.server.auth import require_client_key
from mlxgw.server.guard import loopback_peer
from mlxgw.server.metrics import Snapshot

log = logging.getLogger("mlxgw.server")

STATUS_TIMEOUT_S = 2.0  # a worker too busy to say how it is does not hold the scrape up


async def _local_status(app: web.Application) -> dict | None:
    local = app[STATE].registry.local
    if local is None:
        return None
    try:
        return await asyncio.wait_for(local.status(), STATUS_TIMEOUT_S)
    except Exception as exc:  # a scrape must not fail because the worker is busy or going away
        log.debug("metrics: no status from the local worker: %s", exc)
        return None


async def scrape(request: web.Request) -> web.Response:
    """Client keys guard it like /v1, unless [server] metrics_open_on_loopback lets a local scraper in."""
    app = request.app
    if not (app[STATE].settings.server.metrics_open_on_loopback and loopback_peer(request)):
        require_client_key(request)
    snapshot = Snapshot(
        app[METRICS].registry, app[STATE].registry.names(), app[DISPATCHER].breakers.snapshot(), await _local_status(app)
    )
    # Prometheus's text format, or OpenMetrics for a scraper whose Accept asks for it.
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return web.Response(body=encode(snapshot), headers={"content-type": content_type})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", scrape)
