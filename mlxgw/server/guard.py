"""Which HTTP callers the gateway answers at all, before any key is looked at.

A page in the user's browser can send requests to 127.0.0.1, and with DNS rebinding it can read the
answers too (Ollama's CVE-2024-28224). So: the `Host` must be a loopback name, the bound address or
a name the config allows (a rebinding page's Host is its own domain); a browser `Origin` must be the
gateway's own or one the config allows; a POST must say `application/json` (a page cannot send that
without a CORS preflight, which only allowed origins pass). Allowed origins get CORS headers.
The SDKs, curl, Claude Code and Codex send no Origin and Host 127.0.0.1:PORT: they pass untouched.

CORS is a few lines here rather than aiohttp-cors: that library fixes its origins when routes are
registered (the allow-lists here are re-read with the config), and it only withholds headers from a
disallowed origin while still running the request, where the gateway must refuse it.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket

from aiohttp import hdrs, web

from mlxgw.errors import GatewayError
from mlxgw.server.appkeys import SETTINGS, STATE
from mlxgw.settings import ServerSettings

EXPOSED_HEADERS = "request-id, x-request-id, x-mlxgw-backend, x-mlxgw-attempts, retry-after, x-should-retry"
PREFLIGHT_MAX_AGE_S = 600
_HEADER_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


@web.middleware
async def guard(request: web.Request, handler) -> web.StreamResponse:
    server = request.app[STATE].settings.server  # the live config: allow-lists apply without a restart
    host = request.headers.get(hdrs.HOST)
    # No Host at all is HTTP/1.0 from a program, never a browser: nothing to rebind.
    if host is not None and not host_accepted(host_name(host), request.app[SETTINGS].server.host, server):
        # 421 Misdirected Request: this server does not answer for that authority. A rebinding page
        # is the usual sender; no client retries a 421.
        raise GatewayError(
            "permission",
            f"this gateway does not answer for host {host_name(host)!r}; if that is how you reach it, "
            "add the name to [server] allowed_hosts",
            status=421,
        )
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and not (origin.lower() == f"{request.scheme}://{host}".lower() or allowed_origin(origin, server)):
        raise GatewayError(
            "permission",
            f"requests from web pages at {origin} are refused; to let that page use the gateway, "
            "add its origin to [server] allowed_origins",
        )
    if request.method == hdrs.METH_OPTIONS and origin is not None and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
        return _preflight(request)
    if request.method == hdrs.METH_POST and request.content_type != "application/json":
        sent = repr(request.content_type) if hdrs.CONTENT_TYPE in request.headers else "none"
        raise GatewayError(
            "invalid_request", f"POST bodies must be JSON, sent with `Content-Type: application/json` (got {sent})", status=415
        )
    return await handler(request)


def _preflight(request: web.Request) -> web.Response:
    """A CORS preflight from an allowed origin; `cors_headers` adds the origin itself."""
    asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "")
    headers = {
        hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, POST, OPTIONS",
        hdrs.ACCESS_CONTROL_MAX_AGE: str(PREFLIGHT_MAX_AGE_S),
        hdrs.VARY: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    }
    # Keys travel in headers (authorization, x-api-key) and the SDKs add their own: allow what is asked.
    allowed = [h.strip() for h in asked.split(",") if _HEADER_TOKEN.fullmatch(h.strip())]
    if allowed:
        headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ", ".join(allowed)
    return web.Response(status=204, headers=headers)


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer to an allowed origin, errors and streams included, carries
    the CORS headers a browser needs to let the page read it."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None or not allowed_origin(origin, request.app[STATE].settings.server):
        return
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS
    vary = response.headers.get(hdrs.VARY, "")
    if "origin" not in vary.lower():
        response.headers[hdrs.VARY] = f"{vary}, Origin" if vary else "Origin"


def allowed_origin(origin: str, server: ServerSettings) -> bool:
    return origin.lower().rstrip("/") in server.allowed_origins


def host_name(host: str) -> str:
    """The name part of a Host header: no port, no IPv6 brackets, lower case, no trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, _ = host[1:].partition("]")
    else:
        name, sep, port = host.rpartition(":")
        if not sep or not port.isdigit():
            name = host
    return name.rstrip(".")


def host_accepted(name: str, bound: str, server: ServerSettings) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    wildcard = bound in ("", "0.0.0.0", "::")
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        # An IP literal cannot be rebound; on a specific address only it, loopback and the
        # allow-listed ones (kept normalised, as `str(ip)` spells them) reach us.
        return ip.is_loopback or wildcard or name == bound.strip("[]").lower() or str(ip) in server.allowed_hosts
    if name == bound.lower().rstrip(".") or (wildcard and name in machine_names()):
        return True
    return any(name == p or (p.startswith("*.") and name.endswith(p[1:])) for p in server.allowed_hosts)


@functools.cache
def machine_names() -> frozenset[str]:
    """This machine's host names, as a LAN client would type them (`mac`, `mac.local`); no DNS lookup."""
    full = socket.gethostname().lower().rstrip(".")
    short = full.split(".")[0]
    return frozenset({full, short, f"{short}.local"})


def loopback_peer(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False
