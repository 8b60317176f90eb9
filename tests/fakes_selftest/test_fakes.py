"""The fakes speak the real wire formats: the official SDKs, pointed at them, understand every reply."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import anthropic
import httpx2
import openai
import pytest

from fakes.upstream import FakeAnthropic, FakeOpenAI, Reply, Thinking, ToolCall, Usage, refused_url

KEY = "sk-test-123"
MSG = [{"role": "user", "content": "hi"}]


def oai(up: FakeOpenAI, key: str = KEY, **kw) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=up.url, api_key=key, max_retries=0, **kw)


def ant(up: FakeAnthropic, key: str = KEY, **kw) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=up.url, api_key=key, max_retries=0, **kw)


WEATHER = ToolCall(id="call_a", name="get_weather", arguments={"city": "Paris", "unit": "c"})
TIME = ToolCall(id="call_b", name="get_time", arguments='{"tz": "Europe/Paris"}')


# -- OpenAI --


async def test_openai_plain_and_recorded_request():
    reply = Reply(text="Bonjour tout le monde", usage=Usage(input_tokens=7, cache_read_tokens=3))
    async with FakeOpenAI(reply) as up, oai(up) as client:
        r = await client.chat.completions.create(model="gpt-4o", messages=MSG, temperature=0, seed=5)
        r2 = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert r.choices[0].message.content == "Bonjour tout le monde"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == 10 and r.usage.prompt_tokens_details.cached_tokens == 3
    assert r.usage.completion_tokens == 4  # one per chunk (word)
    assert r2.choices[0].message.content == "Hello from fake-openai" and r2.model == "gpt-4o-mini"
    req = up.requests[0]
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.json == {"model": "gpt-4o", "messages": MSG, "temperature": 0, "seed": 5}
    assert json.loads(req.body) == req.json


async def test_openai_stream_text_with_usage():
    async with (
        FakeOpenAI(Reply(text=["Hel", "lo", " there"], usage=Usage(input_tokens=4))) as up,
        oai(up) as client,
    ):
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 4
    assert chunks[-1].usage.completion_tokens == 3


@pytest.mark.parametrize("interleave", [False, True])
async def test_openai_stream_parallel_tool_calls(interleave):
    reply = Reply(text="Checking.", tool_calls=[WEATHER, TIME], interleave=interleave, arg_chunks=4)
    async with FakeOpenAI(reply) as up, oai(up) as client:
        stream = await client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
        indexes = []
        async for chunk in stream:
            for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                indexes.append(tc.index)
        final = await client.chat.completions.create(model="gpt-4o", messages=MSG, stream=False)
    assert (indexes != sorted(indexes)) is interleave
    # the SDK's own accumulator reassembles the interleaved fragments
    async with (
        FakeOpenAI(reply) as up,
        oai(up) as client,
        client.chat.completions.stream(model="gpt-4o", messages=MSG) as s,
    ):
        done = await s.get_final_completion()
    msg = done.choices[0].message
    assert done.choices[0].finish_reason == "tool_calls" and msg.content == "Checking."
    assert [(t.id, t.function.name, json.loads(t.function.arguments)) for t in msg.tool_calls] == [
        ("call_a", "get_weather", {"city": "Paris", "unit": "c"}),
        ("call_b", "get_time", {"tz": "Europe/Paris"}),
    ]
    assert final.choices[0].message.content == "Hello from fake-openai"  # queue empty -> default


async def test_openai_reasoning_content():
    async with FakeOpenAI(Reply(text="42", thinking="Let me think.")) as up, oai(up) as client:
        stream = await client.chat.completions.create(model="o3", messages=MSG, stream=True)
        reasoning = "".join(
            [getattr(c.choices[0].delta, "reasoning_content", None) or "" async for c in stream]
        )
    assert reasoning == "Let me think."


@pytest.mark.parametrize(
    ("reply", "exc", "code"),
    [
        (Reply(status=429, retry_after=2, retry_after_ms=1500), openai.RateLimitError, "rate_limit_exceeded"),
        (Reply(prompt_too_long=(200_000, 128_000)), openai.BadRequestError, "context_length_exceeded"),
        (Reply(status=404), openai.NotFoundError, "model_not_found"),
        (Reply(status=503), openai.InternalServerError, None),
    ],
)
async def test_openai_errors(reply, exc, code):
    async with FakeOpenAI(reply) as up, oai(up) as client:
        with pytest.raises(exc) as ei:
            await client.chat.completions.create(model="gpt-4o", messages=MSG)
    err = ei.value
    assert err.code == code and set(err.body) == {"message", "type", "param", "code"}
    assert err.response.headers["x-request-id"].startswith("req_")
    if reply.status == 429:
        assert err.response.headers["retry-after"] == "2" and err.response.headers["retry-after-ms"] == "1500"


async def test_openai_require_key():
    async with FakeOpenAI(require_key=KEY) as up:
        async with oai(up, key="sk-wrong") as client:
            with pytest.raises(openai.AuthenticationError):
                await client.chat.completions.create(model="gpt-4o", messages=MSG)
        async with oai(up) as client:
            await client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert [r.bearer for r in up.requests] == ["sk-wrong", KEY]


async def test_openai_stream_misbehaviour():
    async with (
        FakeOpenAI(
            Reply(text="a b c d e", die_after_chunks=3),
            Reply(text="a b c d e", error_event_after_chunks=2),
            Reply(text="a b c d e", malformed=True),
        ) as up,
        oai(up) as client,
    ):
        got = []
        with pytest.raises(openai.APIConnectionError):
            async for c in await client.chat.completions.create(model="m", messages=MSG, stream=True):
                got.append(c.choices[0].delta.content)
        assert got == ["", "a ", "b "]
        with pytest.raises(openai.APIError, match="server had an error"):
            async for _ in await client.chat.completions.create(model="m", messages=MSG, stream=True):
                pass
        with pytest.raises(json.JSONDecodeError):
            async for _ in await client.chat.completions.create(model="m", messages=MSG, stream=True):
                pass


async def test_openai_models_and_malformed_json():
    async with FakeOpenAI(Reply(malformed=True)) as up, oai(up) as client:
        up.push(Reply(status=503), endpoint="models")  # side endpoints have their own queues
        with pytest.raises(openai.InternalServerError):
            await client.models.list()
        models = [m.id async for m in client.models.list()]
        with pytest.raises(json.JSONDecodeError):
            await client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert models == ["gpt-4o", "gpt-4o-mini"]


# -- Anthropic --


async def test_anthropic_plain_and_recorded_request():
    async with FakeAnthropic(Reply(text="Bonjour", stop_sequence="###")) as up, ant(up) as client:
        m = await client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=MSG,
            stop_sequences=["###"],
            extra_body={"temperature": 0.5},
        )
        n = await client.messages.count_tokens(model="claude-sonnet-4-6", messages=MSG)
        models = [x.id async for x in client.models.list()]
    assert m.content[0].text == "Bonjour" and m.stop_reason == "stop_sequence" and m.stop_sequence == "###"
    assert m.usage.input_tokens == n.input_tokens > 0
    assert models == ["claude-sonnet-4-6", "claude-haiku-4-5"]
    req = up.requests[0]
    assert req.path == "/v1/messages" and "anthropic-version" in req.headers
    assert KEY in (req.headers.get("x-api-key"), req.bearer)
    assert req.json == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "messages": MSG,
        "stop_sequences": ["###"],
        "temperature": 0.5,
    }
    assert up.requests[1].path == "/v1/messages/count_tokens"


async def test_anthropic_stream_thinking_text_tools():
    reply = Reply(
        thinking=Thinking("Pondering deeply.", "sig-xyz"),
        text="Calling tools.",
        tool_calls=[("toolu_1", "get_weather", '{"city": "Paris"}'), WEATHER],
        arg_chunks=5,
        usage=Usage(input_tokens=11, output_tokens=33),
    )
    async with (
        FakeAnthropic(reply) as up,
        ant(up) as client,
        client.messages.stream(model="claude-sonnet-4-6", max_tokens=1000, messages=MSG) as s,
    ):
        events = [e.type async for e in s]
        m = await s.get_final_message()
    assert [b.type for b in m.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert (m.content[0].thinking, m.content[0].signature) == ("Pondering deeply.", "sig-xyz")
    assert m.content[1].text == "Calling tools."
    assert (m.content[2].id, m.content[2].name, m.content[2].input) == (
        "toolu_1",
        "get_weather",
        {"city": "Paris"},
    )
    assert m.content[3].input == {"city": "Paris", "unit": "c"}
    assert m.stop_reason == "tool_use" and (m.usage.input_tokens, m.usage.output_tokens) == (11, 33)
    assert events[0] == "message_start" and events[-1] == "message_stop"


async def test_anthropic_default_stream_text():
    async with (
        FakeAnthropic() as up,
        ant(up) as client,
        client.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=MSG) as s,
    ):
        text = "".join([t async for t in s.text_stream])
        m = await s.get_final_message()
    assert text == "Hello from fake-anthropic" and m.stop_reason == "end_turn" and m.usage.output_tokens == 3


@pytest.mark.parametrize(
    ("reply", "exc", "etype"),
    [
        (Reply(status=429, retry_after=3), anthropic.RateLimitError, "rate_limit_error"),
        (Reply(status=529), anthropic.APIStatusError, "overloaded_error"),
        (Reply(prompt_too_long=(250_000, 200_000)), anthropic.BadRequestError, "invalid_request_error"),
        (Reply(status=413), anthropic.APIStatusError, "request_too_large"),
        (Reply(status=500), anthropic.InternalServerError, "api_error"),
    ],
)
async def test_anthropic_errors(reply, exc, etype):
    async with FakeAnthropic(reply) as up, ant(up) as client:
        with pytest.raises(exc) as ei:
            await client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSG)
    assert ei.value.status_code == (reply.status if reply.status != 200 else 400)
    body = ei.value.body
    assert body["type"] == "error" and body["error"]["type"] == etype
    assert ei.value.response.headers["request-id"] == body["request_id"]
    if reply.prompt_too_long:
        assert body["error"]["message"] == "prompt is too long: 250000 tokens > 200000 maximum"
    if reply.status == 429:
        assert ei.value.response.headers["retry-after"] == "3"


async def test_anthropic_require_key_both_headers():
    async with FakeAnthropic(require_key=KEY) as up:
        async with ant(up, key="sk-wrong") as client:
            with pytest.raises(anthropic.AuthenticationError) as ei:
                await client.messages.create(model="c", max_tokens=10, messages=MSG)
            assert ei.value.body["error"]["type"] == "authentication_error"
        async with ant(up) as client:
            await client.messages.create(model="c", max_tokens=10, messages=MSG)
        async with aiohttp.ClientSession() as http:  # raw x-api-key, as Claude Code sends it
            r = await http.post(
                up.url + "/v1/messages",
                json={"model": "c", "max_tokens": 5, "messages": MSG},
                headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
            )
            assert r.status == 200 and r.headers["request-id"]


async def test_anthropic_stream_misbehaviour():
    async with (
        FakeAnthropic(
            Reply(text="a b c", die_after_chunks=4),
            Reply(text="a b c", error_event_after_chunks=4),
        ) as up,
        ant(up) as client,
    ):
        # the anthropic SDK lets the transport error through mid-stream (openai wraps it)
        with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
            async with client.messages.stream(model="c", max_tokens=10, messages=MSG) as s:
                await s.get_final_message()
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
            async with client.messages.stream(model="c", max_tokens=10, messages=MSG) as s:
                await s.get_final_message()


# -- transport-level misbehaviour, both protocols --


async def test_reset_hang_and_refused():
    async with FakeOpenAI(Reply(reset=True), Reply(hang=True), Reply(hang_after_headers=True)) as up:
        async with oai(up, timeout=0.3) as client:
            with pytest.raises(openai.APIConnectionError):
                await client.chat.completions.create(model="m", messages=MSG)
            t0 = time.monotonic()
            with pytest.raises(openai.APITimeoutError):
                await client.chat.completions.create(model="m", messages=MSG)
            with pytest.raises(openai.APITimeoutError):
                async for _ in await client.chat.completions.create(model="m", messages=MSG, stream=True):
                    pass
            assert time.monotonic() - t0 < 3
        await asyncio.sleep(0.05)
        assert up.requests[1].disconnected  # the client gave up on the hang and the fake noticed
    async with openai.AsyncOpenAI(base_url=refused_url("/v1"), api_key=KEY, max_retries=0) as client:
        with pytest.raises(openai.APIConnectionError):
            await client.chat.completions.create(model="m", messages=MSG)


async def test_hang_is_released_on_close():
    up = await FakeAnthropic(Reply(hang=True)).start()
    async with ant(up, timeout=10) as client:
        call = asyncio.create_task(client.messages.create(model="c", max_tokens=5, messages=MSG))
        await up.wait_for_requests(1)
        t0 = time.monotonic()
        await up.close()
        with pytest.raises(anthropic.APIConnectionError):
            await call
    assert time.monotonic() - t0 < 2


async def test_delay_and_chunk_delay():
    async with FakeAnthropic(Reply(delay_s=0.2, text="a b c", chunk_delay_s=0.05)) as up, ant(up) as client:
        t0 = time.monotonic()
        async with client.messages.stream(model="c", max_tokens=10, messages=MSG) as s:
            await s.get_final_message()
    assert time.monotonic() - t0 >= 0.2 + 0.05 * 5
