"""A real gateway on 127.0.0.1 in front of real fake upstreams, with the official SDKs as clients."""

from __future__ import annotations

from dataclasses import dataclass, field

import anthropic
import openai
import pytest
from aiohttp.test_utils import TestServer

from mlxgw.server.app import create_app
from mlxgw.workspace import Workspace
from tests.fakes.upstream import FakeAnthropic, FakeOpenAI
from tests.foundation.helpers import cli

OPENAI_KEY = "sk-test-openai-upstream-0001"
ANTHROPIC_KEY = "sk-ant-test-upstream-0002"


@dataclass
class Gateway:
    url: str
    server: TestServer
    openai_up: FakeOpenAI
    anthropic_up: FakeAnthropic
    clients: list = field(default_factory=list)  # closed at teardown, while the loop still runs

    def openai(self, **kw) -> openai.AsyncOpenAI:
        kw.setdefault("timeout", 10)
        kw.setdefault("max_retries", 0)
        client = openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=kw.pop("api_key", "client-key"), **kw)
        self.clients.append(client)
        return client

    def anthropic(self, **kw) -> anthropic.AsyncAnthropic:
        kw.setdefault("timeout", 10)
        kw.setdefault("max_retries", 0)
        client = anthropic.AsyncAnthropic(base_url=self.url, api_key=kw.pop("api_key", "client-key"), **kw)
        self.clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self.clients:
            await client.close()

    @property
    def app(self):
        return self.server.app


async def start_gateway(**create_kw) -> tuple[TestServer, str]:
    ws = Workspace.open()
    app = create_app(ws.settings, workspace=ws, reload_interval_s=0.2, **create_kw)
    server = TestServer(app, host="127.0.0.1", port=0, handler_cancellation=True)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def gateway():
    """Mappings: gpt-* -> an OpenAI-protocol upstream, claude-* -> an Anthropic one."""
    async with FakeOpenAI(require_key=OPENAI_KEY) as oa, FakeAnthropic(require_key=ANTHROPIC_KEY) as an:
        cli("creds", "set", "oa", "--type", "openai", "--base-url", oa.url, input=OPENAI_KEY + "\n")
        cli("creds", "set", "an", "--type", "anthropic", "--base-url", an.url, input=ANTHROPIC_KEY + "\n")
        cli("map", "add", "gpt-*", "oa")
        cli("map", "add", "claude-*", "an")
        server, url = await start_gateway()
        gw = Gateway(url, server, oa, an)
        try:
            yield gw
        finally:
            await gw.aclose()
            await server.close()
