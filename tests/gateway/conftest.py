"""A real gateway on 127.0.0.1 in front of real fake upstreams, with the official SDKs as clients."""

from __future__ import annotations

import pytest

from fakes.upstream import FakeAnthropic, FakeOpenAI
from tests.foundation.helpers import cli
from tests.gateway.helpers import ANTHROPIC_KEY, OPENAI_KEY, Gateway, start_gateway


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
