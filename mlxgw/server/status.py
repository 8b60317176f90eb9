"""The one picture of a running gateway: `/health` shows its liveness part to anyone and the rest
to key holders; `/mlxgw/status` shows all of it to mlxgw's CLI on this machine (`mlxgw status`)."""

from __future__ import annotations

import os
import time

from aiohttp import web

from mlxgw import __version__
from mlxgw.server.appkeys import DISPATCHER, SETTINGS, STARTED, STATE

CLOSED = {"state": "closed", "consecutive_failures": 0}


def liveness() -> dict:
    return {"status": "ok", "version": __version__}


def backends(app: web.Application) -> dict:
    """Every configured backend with its breaker and any key problem (which can name local paths),
    and each local model's breaker."""
    state = app[STATE]
    breakers = app[DISPATCHER].breakers.snapshot()
    configured = {}
    for name in state.registry.names():
        entry: dict = {"breaker": breakers.get(name, CLOSED)}
        if name in state.registry.key_errors:
            entry["error"] = state.registry.key_errors[name]
        configured[name] = entry
    local_models = {key: b for key, b in breakers.items() if key.startswith("local:")}
    return {"backends": configured, "local_models": local_models}


def uptime_s(app: web.Application) -> float:
    return round(time.monotonic() - app[STARTED], 3)


async def full(app: web.Application) -> dict:
    """Everything, for the CLI: the process, its address, every breaker (configured backends
    included, used or not), key problems and the local worker."""
    settings = app[SETTINGS]
    detail = backends(app)
    breakers = {name: entry["breaker"] for name, entry in detail["backends"].items()}
    breakers.update(app[DISPATCHER].breakers.snapshot())
    local = app[STATE].registry.local
    return {
        **liveness(),
        "running": True,
        "pid": os.getpid(),
        "host": settings.server.host,
        "port": settings.server.port,
        "uptime_s": uptime_s(app),
        "breakers": dict(sorted(breakers.items())),
        "backend_errors": {name: e["error"] for name, e in detail["backends"].items() if "error" in e},
        "local": await local.status() if local is not None else None,
    }
