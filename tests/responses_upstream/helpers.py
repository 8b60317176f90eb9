"""A gateway whose `gpt-5*` models live on a fake Responses-only upstream (`type = "responses"`),
with a fake Anthropic upstream beside it for `claude-*`, and the official SDKs as clients."""

from __future__ import annotations

from dataclasses import dataclass, field

import anthropic
import openai
from aiohttp.test_utils import TestServer

from fakes.upstream import FakeAnthropic, FakeResponses

RESPONSES_KEY = "sk-test-responses-upstream-0003"
ANTHROPIC_KEY = "sk-ant-test-upstream-0004"
MODEL = "gpt-5"  # routed to the Responses upstream
CLAUDE = "claude-sonnet-4-6"  # routed to the Anthropic upstream


@dataclass
class Rig:
    url: str
    server: TestServer
    responses_up: FakeResponses
    anthropic_up: FakeAnthropic
    clients: list = field(default_factory=list)

    def openai(self, **kw) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=self.url + "/v1", api_key="client-key", timeout=10, max_retries=0, **kw)
        self.clients.append(client)
        return client

    def anthropic(self, **kw) -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(base_url=self.url, api_key="client-key", timeout=10, max_retries=0, **kw)
        self.clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self.clients:
            await client.close()


def sent_items(up: FakeResponses, kind: str, n: int = -1) -> list[dict]:
    """The input items of type `kind` in the upstream's `n`th request."""
    return [item for item in up.requests[n].json["input"] if item.get("type") == kind]
