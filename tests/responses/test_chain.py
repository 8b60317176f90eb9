"""Responses requests walk the same chains as the other wires: failover before the first byte, the
request log row (`protocol = responses`), and token counting (`POST /v1/responses/input_tokens`)
by the first backend of the chain that can."""

from __future__ import annotations

import openai
import pytest

from fakes.upstream import FakeAnthropic, FakeOpenAI, Reply, Usage
from mlxgw.store import request_log
from tests.failover.rig import gateway_for
from tests.gateway.helpers import eventually, post
from tests.responses.helpers import CHAT, CLAUDE


@pytest.mark.parametrize("stream", [False, True])
async def test_failover_and_the_request_log(stream):
    async with FakeOpenAI(Reply(status=503), Reply(status=503)) as oa, FakeAnthropic(Reply(text="from the fallback", usage=Usage(input_tokens=11, output_tokens=3))) as an:
        backends = {"oa": ("openai", oa.url, {}), "an": ("anthropic", an.url, {})}
        mapping = {"pattern": "gpt-*", "backend": "oa", "fallbacks": ["an:claude-sonnet-4-6"]}
        async with gateway_for(backends, [mapping]) as url:
            r = await post(url + "/v1/responses", {"model": CHAT, "input": "hi", "stream": stream})
            assert r.status == 200 and r.headers["x-mlxgw-backend"] == "an:claude-sonnet-4-6"
            final = r.events()[-1]["response"] if stream else r.json
            assert final["output"][0]["content"][0]["text"] == "from the fallback"
            (row,) = await eventually(lambda: request_log.tail(5))
    assert len(oa.requests) == 2 and an.requests[0].json["model"] == "claude-sonnet-4-6"
    assert (row.protocol, row.requested_model, row.backend, row.fallbacks, row.stream) == ("responses", CHAT, "an", 1, stream)
    assert (row.status, row.input_tokens, row.output_tokens, row.error_kind) == (200, 11, 3, None)


async def test_a_failed_request_is_logged_with_its_status(gateway):
    with pytest.raises(openai.NotFoundError):
        await gateway.openai().responses.create(model="unmapped-model", input="hi")
    (row,) = await eventually(lambda: request_log.tail(5))
    assert (row.protocol, row.status, row.error_kind) == ("responses", 404, "model_not_found")


async def test_input_tokens_are_counted_through_the_chain(gateway):
    gateway.anthropic_up.push(Reply(usage=Usage(input_tokens=1234)), endpoint="count_tokens")
    client = gateway.openai()
    count = await client.responses.input_tokens.count(model=CLAUDE, input="How many tokens is this?", instructions="Be brief.")
    assert (count.object, count.input_tokens) == ("response.input_tokens", 1234)
    (sent,) = [r for r in gateway.anthropic_up.requests if r.path == "/v1/messages/count_tokens"]
    assert sent.json["system"][0]["text"] == "Be brief." and sent.json["messages"][0]["content"][0]["text"] == "How many tokens is this?"

    estimated = await client.responses.input_tokens.count(model=CHAT, input="How many tokens is this?")
    assert estimated.input_tokens > 0  # Chat Completions servers have no count: mlxgw estimates

    r = await post(gateway.url + "/v1/responses/input_tokens", {"model": CHAT, "input": 3})
    assert (r.status, r.json["error"]["param"]) == (400, "input")
