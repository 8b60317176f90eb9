"""Talking to the running daemon from the CLI (plain urllib: the CLI stays light)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from mlxgw.config import Settings
from mlxgw.errors import MlxgwError


def base_url(settings: Settings) -> str:
    """Where this home's daemon listens: the address it recorded (`--host/--port` may have moved it),
    else the config's."""
    from mlxgw.daemon.lock import holder

    info = holder()
    if info is not None and info.listening:
        return info.url
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # a daemon on every address answers on loopback too
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


def call(settings: Settings, method: str, path: str, *, timeout: float = 30.0) -> Any:
    """Call the daemon; one-line errors when it is not running or says no."""
    url = base_url(settings) + path
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
            message = (body.get("error") or {}).get("message") or str(body)
        except ValueError:
            message = exc.reason
        raise MlxgwError(f"the daemon said: {message}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        raise MlxgwError(
            f"no mlxgw daemon is answering at {base_url(settings)}; start one with `mlxgw serve` or `mlxgw start`"
        ) from None


def running(settings: Settings) -> bool:
    try:
        call(settings, "GET", "/health", timeout=2.0)
    except MlxgwError:
        return False
    return True
