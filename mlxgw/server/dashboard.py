"""The dashboard page at `/ui` (`/` leads there): plain HTML, CSS and JS shipped in the wheel
(`mlxgw/server/static/`), served by the daemon itself. The page holds no data: it reads the JSON
endpoints (`/mlxgw/status`, `/mlxgw/requests`, `/mlxgw/stats`), which check the client keys."""

from __future__ import annotations

import functools
from importlib import resources

from aiohttp import hdrs, web

from mlxgw.errors import GatewayError

ASSETS = {
    "index.html": "text/html",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "favicon.svg": "image/svg+xml",
}

# Only the page's own scripts, styles and fetches; no framing (clickjacking), no inline code.
HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@functools.cache
def _asset(name: str) -> bytes:
    return resources.files("mlxgw.server").joinpath("static", name).read_bytes()


def _serve(name: str) -> web.Response:
    return web.Response(body=_asset(name), headers={**HEADERS, "content-type": f"{ASSETS[name]}; charset=utf-8"})


async def page(request: web.Request) -> web.Response:
    return _serve("index.html")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise GatewayError("not_found", f"no such endpoint: GET {request.path}")
    return _serve(name)


async def root(request: web.Request) -> web.Response:
    """`/` leads a browser to the dashboard; it serves nothing else (a POST there is a 404, as before)."""
    if request.method in (hdrs.METH_GET, hdrs.METH_HEAD):
        raise web.HTTPFound("/ui")
    raise web.HTTPNotFound()


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", "/", root)
    app.router.add_get("/ui", page)
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/{name}", asset)
