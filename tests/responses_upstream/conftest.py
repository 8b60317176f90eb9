"""A real gateway in front of a fake Responses-only upstream and a fake Anthropic one."""

from __future__ import annotations

import pytest

from fakes.upstream import FakeAnthropic, FakeResponses
from tests.foundation.helpers import cli
from tests.gateway.helpers import start_gateway
from tests.responses_upstream.helpers import ANTHROPIC_KEY, RESPONSES_KEY, Rig


@pytest.fixture
async def rig():
    async with FakeResponses(require_key=RESPONSES_KEY) as rs, FakeAnthropic(require_key=ANTHROPIC_KEY) as an:
        cli("creds", "set", "rs", "--type", "responses", "--base-url", rs.url, input=RESPONSES_KEY + "\n")
        cli("creds", "set", "an", "--type", "anthropic", "--base-url", an.url, input=ANTHROPIC_KEY + "\n")
        cli("map", "add", "gpt-5*", "rs")
        cli("map", "add", "claude-*", "an")
        server, url = await start_gateway()
        rig = Rig(url, server, rs, an)
        try:
            yield rig
        finally:
            await rig.aclose()
            await server.close()
