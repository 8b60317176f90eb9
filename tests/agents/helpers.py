"""What the agent tests share: mlxgw (create_app on a TestServer) in front of one fake upstream,
a tap that records the bytes an agent sends before they reach mlxgw, and readers of what the fake
upstreams were sent."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from fakes.upstream import FakeUpstream
from mlxgw import paths
from tests.foundation.helpers import cli
from tests.gateway.helpers import start_gateway

UPSTREAM_KEY = "sk-agent-test-upstream-0003"
# aiohttp reads bodies decoded and writes them with its own framing, so these are its to set.
HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


@contextlib.asynccontextmanager
async def gateway(fake: FakeUpstream, kind: str, pattern: str, model: str, **backend_toml: str
                  ) -> AsyncIterator[str]:
    """mlxgw with one backend `up` of type `kind` at `fake` (plus `backend_toml`'s settings, TOML
    values), `pattern` mapped to its `model`; yields the gateway's base URL (no /v1)."""
    cli("creds", "set", "up", "--type", kind, "--base-url", fake.url, input=UPSTREAM_KEY + "\n")
    if backend_toml:  # `creds set` has just written [backends.up] as the file's last table
        with paths.config_path().open("a") as f:
            f.writelines(f"{name} = {value}\n" for name, value in backend_toml.items())
    cli("map", "add", pattern, "up", "--model", model)
    server, url = await start_gateway()
    try:
        yield url
    finally:
        await server.close()


@dataclass
class Tapped:
    method: str
    path: str
    body: bytes


class Tap:
    """An HTTP relay on 127.0.0.1 in front of `target`: records each request's bytes as the client
    sent them, then forwards it and streams the answer back unchanged."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.requests: list[Tapped] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Tapped(request.method, request.path_qs, body))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        assert self._session is not None
        async with self._session.request(request.method, self.target + request.path_qs, data=body,
                                         headers=headers) as up:
            resp = web.StreamResponse(status=up.status, headers={
                k: v for k, v in up.headers.items() if k.lower() not in HOP_BY_HOP})
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def __aenter__(self) -> Tap:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()


def anthropic_blocks(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Every content block of type `kind` in an Anthropic Messages request, in order."""
    return [block for msg in body["messages"] if isinstance(msg["content"], list)
            for block in msg["content"] if block.get("type") == kind]


def text_of(content: Any) -> str:
    """A tool result's content (a string or a list of blocks/parts) as one string."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def arguments(call_arguments: str | dict[str, Any]) -> dict[str, Any]:
    return json.loads(call_arguments) if isinstance(call_arguments, str) else call_arguments
