"""What the Responses client tests share: a gateway in front of a fake Chat Completions and a fake
Anthropic upstream, and a streamed answer's events as the SDK parsed them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp

from fakes.upstream import FakeAnthropic, FakeOpenAI
from tests.foundation.helpers import cli
from tests.gateway.helpers import ANTHROPIC_KEY, OPENAI_KEY, Gateway, Raw, start_gateway

CHAT = "gpt-4o"  # a model routed to the Chat Completions upstream
CLAUDE = "claude-sonnet-4-6"  # and one routed to the Anthropic upstream
MODELS = {"openai": CHAT, "anthropic": CLAUDE}


@contextlib.asynccontextmanager
async def responses_gateway() -> AsyncIterator[Gateway]:
    """Mappings: gpt-* -> a Chat Completions upstream, claude-* -> an Anthropic one."""
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


async def streamed(client, **kw) -> list:
    """Every event of a streamed `responses.create`, as the SDK typed it."""
    stream = await client.responses.create(stream=True, **kw)
    return [event async for event in stream]


def of_type(events: list, kind: str) -> list:
    return [e for e in events if e.type == kind]


async def delete(url: str, timeout: float = 10) -> Raw:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.delete(url) as resp,
    ):
        return Raw(resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read())
