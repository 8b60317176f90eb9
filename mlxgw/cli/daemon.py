"""Talking to the running daemon from the CLI (plain urllib: the CLI stays light)."""

from __future__ import annotations

from typing import Any

from mlxgw.config import Settings
from mlxgw.errors import MlxgwError


def base_url(settings: Settings) -> str:
    """Where this home's daemon listens: the address it recorded (`--host/--port` may have moved it),
    else the config's."""
    from mlxgw.daemon.lock import holder, url_for

    info = holder()
    if info is not None and info.listening:
        return info.url
    return url_for(settings.server.host, settings.server.port)


def call(settings: Settings, method: str, path: str, *, timeout: float = 30.0) -> Any:
    """Call the daemon; one-line errors when it is not running or says no."""
    from mlxgw.daemon.client import DaemonClient

    return DaemonClient(base_url(settings), timeout=timeout).call(method, path)


def running(settings: Settings) -> bool:
    try:
        call(settings, "GET", "/health", timeout=2.0)
    except MlxgwError:
        return False
    return True
