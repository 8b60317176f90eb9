"""One mlxgw in front of a second mlxgw (`type = "mlxgw"`, each its own home, the second a real
`mlxgw serve`): both SDKs' round trips through the pair, passthrough end to end, the second's
client key as the credential, and its errors mapped sensibly through the first."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
import anthropic
import openai
import pytest

from fakes.upstream import (
    FakeAnthropic,
    FakeOpenAI,
    FakeResponses,
    Reply,
    Thinking,
    ToolCall,
    fake_token_count,
)
from tests.failover.rig import flushed_rows
from tests.foundation.helpers import cli
from tests.gateway.helpers import ask_anthropic, ask_openai, eventually, start_gateway
from tests.scale_backends.peer import peer_gateway

OPENAI_KEY = "sk-test-innermost-openai-0001"
ANTHROPIC_KEY = "sk-ant-test-innermost-0002"
MSG = [{"role": "user", "content": "What is the weather in Paris?"}]
OPENAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": OPENAI_TOOLS[0]["function"]["parameters"]}]

# What the innermost server sends, byte for byte, with its own odd spacing and field order.
CHUNKS = [
    b'data: {"id":"chatcmpl-x1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp_1",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Bonjour"},"finish_reason":null}]}\n\n',
    b'data:  {"choices":[{"index":0,"delta":{"content":" Paris"},"finish_reason":null}],"id":"chatcmpl-x1",'
    b'"object":"chat.completion.chunk","created":1,"model":"gpt-4o"}\n\n',
    b'data: {"id":"chatcmpl-x1","object":"chat.completion.chunk","created":1,"model":"gpt-4o",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
    b'data: {"id":"chatcmpl-x1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],'
    b'"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}\n\n',
    b"data: [DONE]\n\n",
]
EVENTS = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_x1","type":"message","role":"assistant",'
    b'"model":"claude-sonnet-4-6","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
    b"event: ping\ndata: {\"type\": \"ping\"}\n\n",
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Bonjour"}}\n\n',
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]


def _front_uses(peer, *mappings: tuple[str, ...]) -> None:
    """This test's home is the gateway in front: the second mlxgw is its backend `second`, with the
    client key the second made for it."""
    cli("creds", "set", "second", "--type", "mlxgw", "--base-url", peer.url, input=peer.key + "\n")
    for args in mappings:
        cli("map", "add", *args)


@contextlib.asynccontextmanager
async def _front():
    server, url = await start_gateway()
    try:
        yield url
    finally:
        await server.close()


async def _attempts(n: int) -> list[list[dict]]:
    """The attempts of the front's last `n` requests, from its request log."""
    for _ in range(50):
        rows = await flushed_rows()
        if len(rows) >= n:
            return [json.loads(row.attempts) for row in rows[-n:]]
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {n} request log rows")


async def _raw(url: str, path: str, body: dict, headers: dict) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s, s.post(url + path, json=body, headers=headers) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


async def test_openai_sdk_round_trips_through_two_gateways(tmp_path):
    weather = ToolCall("get_weather", {"city": "Paris"})
    replies = [Reply(text="Hello there"), Reply(text="streamed words here"), Reply(tool_calls=[weather]),
               Reply(text="It is sunny"), Reply(raw=CHUNKS)]
    async with FakeOpenAI(*replies, require_key=OPENAI_KEY) as up, peer_gateway(
        tmp_path / "second", {"up": ("openai", up.url)}, [{"pattern": "gpt-*", "backend": "up"}], {"up": OPENAI_KEY}
    ) as peer:
        _front_uses(peer, ("gpt-*", "second"))
        async with _front() as url, openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20) as oa:
            r = await oa.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG, extra_body={"seed": 7, "x_vendor": {"a": 1}})
            assert r.headers["x-mlxgw-backend"] == "second:gpt-4o"
            assert r.parse().choices[0].message.content == "Hello there"
            # The second gateway's key reached the innermost server (the fake refuses any other);
            # the client's body reached it as sent, unknown fields and all.
            first = up.requests[0]
            assert first.bearer == OPENAI_KEY
            assert (first.json["seed"], first.json["x_vendor"], first.json["messages"]) == (7, {"a": 1}, MSG)

            streamed = await ask_openai(oa, stream=True, model="gpt-4o", messages=MSG)
            assert streamed.text == "streamed words here" and streamed.output_tokens is not None
            assert up.requests[1].json["stream_options"] == {"include_usage": True}

            called = await ask_openai(oa, stream=True, model="gpt-4o", messages=MSG, tools=OPENAI_TOOLS)
            (call_id, name, args), = called.tool_calls
            assert (name, args, called.finish) == ("get_weather", {"city": "Paris"}, "tool_calls")
            follow = [*MSG, {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]},
                {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21 C"}]
            final = await ask_openai(oa, stream=False, model="gpt-4o", messages=follow, tools=OPENAI_TOOLS)
            assert final.text == "It is sunny"
            assert up.requests[3].json["messages"] == follow and up.requests[3].json["tools"] == OPENAI_TOOLS

            status, headers, body = await _raw(url, "/v1/chat/completions", {"model": "gpt-4o", "messages": MSG, "stream": True}, {})
            assert status == 200 and headers["x-mlxgw-backend"] == "second:gpt-4o"
            assert body == b"".join(CHUNKS)  # both hops relayed the innermost bytes unchanged

    attempts = await _attempts(5)
    assert attempts == [[{"backend": "second", "model": "gpt-4o", "tries": 1, "error": None, "passthrough": True}]] * 5


async def test_anthropic_sdk_round_trips_through_two_gateways(tmp_path):
    weather = ToolCall("get_weather", {"city": "Paris"})
    thought = Thinking("The user wants the weather.", signature="EqSigFromTheRealProvider==")
    replies = [Reply(text="Hello there", thinking=thought), Reply(text="streamed words here"), Reply(tool_calls=[weather]),
               Reply(text="It is sunny"), Reply(raw=EVENTS)]
    async with FakeAnthropic(*replies, require_key=ANTHROPIC_KEY) as up, peer_gateway(
        tmp_path / "second", {"up": ("anthropic", up.url)}, [{"pattern": "claude-*", "backend": "up"}], {"up": ANTHROPIC_KEY}
    ) as peer:
        _front_uses(peer, ("claude-*", "second"))
        async with _front() as url, anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0, timeout=20) as ac:
            beta = {"anthropic-beta": "interleaved-thinking-2025-05-14", "anthropic-version": "2023-06-01"}
            msg = await ac.messages.create(
                model="claude-sonnet-4-6", max_tokens=200, messages=MSG, extra_headers=beta,
                extra_body={"thinking": {"type": "enabled", "budget_tokens": 100}, "context_management": {"edits": []}},
            )
            assert [b.type for b in msg.content] == ["thinking", "text"]
            assert msg.content[0].signature == "EqSigFromTheRealProvider=="  # never re-minted by either hop
            first = up.requests[0]
            assert first.header("x-api-key") == ANTHROPIC_KEY or first.bearer == ANTHROPIC_KEY
            assert first.header("anthropic-beta") == "interleaved-thinking-2025-05-14"
            assert first.json["context_management"] == {"edits": []} and first.json["messages"] == MSG

            streamed = await ask_anthropic(ac, stream=True, model="claude-sonnet-4-6", max_tokens=200, messages=MSG)
            assert streamed.text == "streamed words here" and streamed.input_tokens

            called = await ask_anthropic(ac, stream=True, model="claude-sonnet-4-6", max_tokens=200, messages=MSG, tools=ANTHROPIC_TOOLS)
            (call_id, name, args), = called.tool_calls
            assert (name, args, called.finish) == ("get_weather", {"city": "Paris"}, "tool_use")
            follow = [*MSG, {"role": "assistant", "content": [{"type": "tool_use", "id": call_id, "name": name, "input": args}]},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny, 21 C"}]}]
            final = await ask_anthropic(ac, stream=False, model="claude-sonnet-4-6", max_tokens=200, messages=follow, tools=ANTHROPIC_TOOLS)
            assert final.text == "It is sunny"
            assert up.requests[3].json["messages"] == follow

            status, headers, body = await _raw(
                url, "/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 50, "messages": MSG, "stream": True},
                {"anthropic-version": "2023-06-01"},
            )
            assert status == 200 and headers["x-mlxgw-backend"] == "second:claude-sonnet-4-6"
            assert body == b"".join(EVENTS)

    assert all(tried[0]["passthrough"] for tried in await _attempts(5))


async def test_the_second_gateways_errors_map_sensibly_through_the_first(tmp_path):
    # The innermost server is overloaded: the second gateway tries it twice and answers 503 with
    # x-should-retry: false. The first does not retry the second but moves on to its fallback.
    overloaded = [Reply(status=503), Reply(status=503)]
    async with FakeOpenAI(*overloaded, Reply(status=400, error_message="messages: bad role 'robot'")) as up, FakeOpenAI(
        Reply(text="from the fallback")
    ) as direct, peer_gateway(
        tmp_path / "second", {"up": ("openai", up.url)}, [{"pattern": "*", "backend": "up"}], {"up": "k"},
        key_args=("--rpm", "2"),
    ) as peer:
        cli("creds", "set", "direct", "--type", "openai", "--base-url", direct.url, "--no-key")
        _front_uses(peer, ("gpt-4o", "second", "-f", "direct"), ("claude-x", "second"))
        async with _front() as url, openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20) as oa:
            r = await oa.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
            assert r.parse().choices[0].message.content == "from the fallback"
            assert len(up.requests) == 2  # the second's own two tries, not multiplied by the first
            (tried,) = await _attempts(1)
            assert [(a["backend"], a["tries"], a["error"]) for a in tried] == [
                ("second", 1, "unavailable"), ("direct", 1, None)]

            # A request error is the client's, in its own protocol: not retried, no fallback.
            with pytest.raises(openai.BadRequestError) as bad:
                await oa.chat.completions.create(model="gpt-4o", messages=MSG)
            assert "bad role 'robot'" in bad.value.message
            assert len(up.requests) == 3 and len(direct.requests) == 1

        # Over the second's rate limit for the first's key (2 a minute): a 429 with Retry-After, in
        # the Anthropic client's own protocol, the wait too long to retry here.
        async with _front() as url, anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0, timeout=20) as ac:
            with pytest.raises(anthropic.RateLimitError) as limited:
                await ac.messages.create(model="claude-x", max_tokens=10, messages=MSG)
            assert limited.value.status_code == 429
            assert limited.value.body["error"]["type"] == "rate_limit_error"
            assert int(limited.value.response.headers["retry-after"]) >= 1
            assert len(up.requests) == 3


async def test_responses_and_token_counts_through_two_gateways(tmp_path):
    async with FakeResponses(Reply(text="Hello from the Responses API")) as rup, FakeAnthropic() as aup, peer_gateway(
        tmp_path / "second", {"rup": ("responses", rup.url), "aup": ("anthropic", aup.url)},
        [{"pattern": "gpt-5*", "backend": "rup"}, {"pattern": "claude-*", "backend": "aup"}], {"rup": "k1", "aup": "k2"},
    ) as peer:
        _front_uses(peer, ("gpt-5*", "second"), ("claude-*", "second"))
        async with _front() as url, openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20) as oa:
            answer = await oa.responses.create(model="gpt-5", input="hi", store=False, extra_body={"x_vendor": 1})
            assert answer.output_text == "Hello from the Responses API"
            (sent,) = rup.requests
            assert (sent.path, sent.json["input"], sent.json["x_vendor"]) == ("/v1/responses", "hi", 1)
        async with _front() as url, anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0, timeout=20) as ac:
            counted = await ac.messages.count_tokens(model="claude-sonnet-4-6", messages=MSG)
            (sent,) = aup.requests
            assert sent.path == "/v1/messages/count_tokens"  # counted by the innermost server, not estimated
            assert counted.input_tokens == fake_token_count(sent.json)


async def test_a_gateway_that_leads_back_to_itself_is_refused_not_looped():
    cli("map", "list")
    async with _front() as url, openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20) as oa:
        cli("creds", "set", "loop", "--type", "mlxgw", "--base-url", url, "--no-key")  # itself, by mistake
        cli("map", "add", "*", "loop")

        async def refused():
            try:
                await oa.chat.completions.create(model="m", messages=MSG)
            except openai.BadRequestError as exc:
                return exc
            except openai.NotFoundError:
                return None  # the mapping is not loaded yet

        exc = await eventually(refused, timeout=10)
        assert "came through 5 mlxgw gateways" in exc.message and "check its base_url" in exc.message
