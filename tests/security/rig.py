"""A real gateway (create_app on aiohttp's TestServer, always on 127.0.0.1) that believes it was
bound to `host`, in front of a fake OpenAI upstream routed for `gpt-*`; raw aiohttp requests
shaped as a browser or a program would send them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from fakes.upstream import FakeOpenAI
from mlxgw import paths
from mlxgw.server.app import create_app
from mlxgw.workspace import Workspace
from tests.foundation.helpers import cli

UPSTREAM_KEY = "sk-test-upstream-guard-0001"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
ANTHROPIC = {"anthropic-version": "2023-06-01"}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Rig:
    url: str
    port: int
    upstream: FakeOpenAI

    async def call(self, method: str, path: str, *, body: Any = CHAT, data: bytes | None = None,
                   headers: dict[str, str] | None = None) -> Answer:
        """One request, JSON unless `data` or a content-type header says otherwise; bounded."""
        h = dict(headers or {})
        if method == "POST" and data is None:
            data = json.dumps(body).encode()
            h.setdefault("content-type", "application/json")
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.request(
            method, self.url + path, data=data, headers=h
        ) as r:
            return Answer(r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read())


@contextlib.asynccontextmanager
async def gateway(host: str = "127.0.0.1", *, insecure: bool = False) -> AsyncIterator[Rig]:
    async with FakeOpenAI(require_key=UPSTREAM_KEY) as up:
        cli("creds", "set", "oa", "--type", "openai", "--base-url", up.url, input=UPSTREAM_KEY + "\n")
        cli("map", "add", "gpt-*", "oa")
        ws = Workspace.open()
        app = create_app(ws.settings.with_address(host, None, insecure=insecure), workspace=ws, reload_interval_s=0.2)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        try:
            yield Rig(str(server.make_url("")).rstrip("/"), server.port, up)
        finally:
            await server.close()


def set_server_option(line: str) -> None:
    """Add a line to the config's [server] table, as a user editing the file would."""
    path = paths.config_path()
    text = path.read_text()
    assert "[server]\n" in text
    path.write_text(text.replace("[server]\n", f"[server]\n{line}\n", 1))


def error_shape(protocol: str, body: dict) -> dict:
    """The error object of either protocol's error body, asserting its shape."""
    if protocol == "anthropic":
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]
