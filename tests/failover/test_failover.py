"""Each misbehaviour of an upstream: the attempts made, the final status, the error shape, the time."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer

from fakes.upstream import FakeAnthropic, FakeOpenAI, Reply, Usage, refused_url
from tests.failover.rig import MSG, Clock, client, flushed_rows, gateway_for, post


@pytest.mark.parametrize(
    ("misbehaviour", "primary_requests"),
    [
        (Reply(reset=True), 2),  # retried once (max_tries 2), then the fallback
        (Reply(status=500), 2),
        (Reply(status=502), 2),
        (Reply(status=529), 2),
        (Reply(malformed=True), 2),
        # Headers, then silence: the answer was generated, so it is not asked for again (a plain
        # hang of a whole answer waits for the request deadline: tests/liveness).
        (Reply(hang_after_headers=True), 1),
        (Reply(status=429, retry_after=60), 1),  # asks for too long a wait: skip at once
    ],
    ids=["reset", "500", "502", "529", "malformed", "hang-after-headers", "429-long"],
)
async def test_primary_failure_moves_to_fallback(misbehaviour, primary_requests):
    async with FakeOpenAI(misbehaviour, misbehaviour) as primary, FakeAnthropic(Reply(text="from fallback")) as backup:
        backends = {"p": ("openai", primary.url, {}), "b": ("anthropic", backup.url, {})}
        async with gateway_for(backends, [{"pattern": "m", "backend": "p", "fallbacks": ["b:claude-x"]}]) as url:
            with Clock() as clock:
                status, headers, body = await post(url)
            assert status == 200, body
            assert json.loads(body)["choices"][0]["message"]["content"] == "from fallback"
            assert headers["x-mlxgw-backend"] == "b:claude-x"
            assert headers["x-mlxgw-attempts"] == "2"
            assert len(primary.requests) == primary_requests
            assert backup.requests[0].json["model"] == "claude-x"
            assert clock.elapsed < 1 * primary_requests + 2  # first_byte_timeout 1 s per try, plus backoff
            rows = await flushed_rows()
            attempts = json.loads(rows[-1].attempts)
            assert [a["backend"] for a in attempts] == ["p", "b"]
            assert attempts[0]["error"] and attempts[1]["error"] is None


async def test_refused_connection_moves_on():
    async with FakeOpenAI(Reply(text="second")) as backup:
        backends = {"p": ("openai", refused_url("/v1"), {}), "b": ("openai", backup.url, {})}
        async with gateway_for(backends, [{"pattern": "m", "backend": "p", "fallbacks": ["b"]}]) as url:
            r = await client(url).chat.completions.with_raw_response.create(model="m", messages=MSG)
            assert r.parse().choices[0].message.content == "second"
            assert r.headers["x-mlxgw-attempts"] == "2"


async def test_429_with_short_retry_after_is_retried_on_same_backend():
    async with FakeOpenAI(Reply(status=429, retry_after_ms=200), Reply(text="after wait")) as primary:
        async with gateway_for({"p": ("openai", primary.url, {})}, [{"pattern": "m", "backend": "p"}]) as url:
            with Clock() as clock:
                r = await client(url).chat.completions.create(model="m", messages=MSG)
            assert r.choices[0].message.content == "after wait"
            assert len(primary.requests) == 2
            assert 0.2 <= clock.elapsed < 2


async def test_client_error_is_not_retried_nor_failed_over():
    bad = Reply(status=400, error_message="messages: bad role", error_type="invalid_request_error")
    async with FakeOpenAI(bad) as primary, FakeOpenAI(Reply(text="never")) as backup:
        backends = {"p": ("openai", primary.url, {}), "b": ("openai", backup.url, {})}
        async with gateway_for(backends, [{"pattern": "m", "backend": "p", "fallbacks": ["b"]}]) as url:
            with pytest.raises(openai.BadRequestError) as err:
                await client(url).chat.completions.create(model="m", messages=MSG)
            assert "bad role" in str(err.value)
            assert len(primary.requests) == 1 and backup.requests == []


async def test_upstream_401_is_a_gateway_configuration_error():
    async with FakeOpenAI(require_key="right-key") as primary:
        async with gateway_for({"p": ("openai", primary.url, {})}, [{"pattern": "m", "backend": "p"}]) as url:
            status, headers, body = await post(url)
            assert status == 502
            error = json.loads(body)["error"]
            assert "backend p rejected mlxgw's credentials" in error["message"]
            assert "mlxgw creds set p" in error["message"]


async def test_all_backends_failing_gives_one_clear_error():
    async with FakeOpenAI(*[Reply(status=503)] * 4) as a, FakeAnthropic(*[Reply(status=529)] * 4) as b:
        backends = {"a": ("openai", a.url, {}), "b": ("anthropic", b.url, {})}
        async with gateway_for(backends, [{"pattern": "m", "backend": "a", "fallbacks": ["b:claude-x"]}]) as url:
            status, headers, body = await post(url)
            assert status == 502
            assert headers["x-should-retry"] == "false"
            message = json.loads(body)["error"]["message"]
            assert "every backend failed" in message and "a:m" in message and "b:claude-x" in message


async def test_request_deadline_bounds_everything():
    hangs = [Reply(hang=True)] * 4
    async with FakeOpenAI(*hangs) as a, FakeOpenAI(*hangs) as b:
        slow = {"first_byte_timeout_s": 30}
        backends = {"a": ("openai", a.url, slow), "b": ("openai", b.url, slow)}
        mappings = [{"pattern": "m", "backend": "a", "fallbacks": ["b"]}]
        async with gateway_for(backends, mappings, server={"request_deadline_s": 1.5}) as url:
            with Clock() as clock:
                status, _, body = await post(url)
            assert status == 504
            assert "request deadline" in json.loads(body)["error"]["message"]
            assert clock.elapsed < 3


async def test_stream_failing_before_first_content_fails_over():
    # The primary sends its role chunk, then dies: nothing meaningful reached the client yet.
    async with FakeOpenAI(Reply(die_after_chunks=1), Reply(die_after_chunks=1)) as primary, FakeOpenAI(Reply(text="backup speaks")) as backup:
        backends = {"p": ("openai", primary.url, {}), "b": ("openai", backup.url, {})}
        async with gateway_for(backends, [{"pattern": "m", "backend": "p", "fallbacks": ["b"]}]) as url:
            stream = await client(url).chat.completions.create(model="m", messages=MSG, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "backup speaks"


async def test_stream_failing_after_first_content_ends_with_error_event():
    async with FakeAnthropic(Reply(text="one two three four five", die_after_chunks=4)) as primary, FakeAnthropic(Reply(text="unused")) as backup:
        backends = {"p": ("anthropic", primary.url, {}), "b": ("anthropic", backup.url, {})}
        async with gateway_for(backends, [{"pattern": "m", "backend": "p", "fallbacks": ["b"]}]) as url:
            async with aiohttp.ClientSession() as s, s.post(
                url + "/v1/messages", json={"model": "m", "max_tokens": 10, "messages": MSG, "stream": True},
                headers={"anthropic-version": "2023-06-01"},
            ) as r:
                assert r.status == 200
                raw = (await r.read()).decode()
            assert "content_block_delta" in raw
            assert raw.rstrip().split("\n\n")[-1].startswith("event: error")
            assert "message_stop" not in raw
            assert backup.requests == []


async def _stalling_upstream():
    """An OpenAI-compatible upstream that says one word, then goes silent."""
    from aiohttp import web

    async def handler(request):
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": "one"}, "finish_reason": None}]}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await asyncio.sleep(30)
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


async def test_idle_stream_after_first_byte_ends_with_error_event():
    upstream = await _stalling_upstream()
    try:
        base = str(upstream.make_url("/v1"))
        policy = {"idle_timeout_s": 0.5, "first_byte_timeout_s": 10}  # a loaded machine may be slow to the first byte
        async with gateway_for({"p": ("openai", base, policy)}, [{"pattern": "m", "backend": "p"}]) as url:
            with Clock() as clock:
                status, _, body = await post(url, stream=True)
            assert status == 200
            frames = body.decode().strip().split("\n\n")
            assert '"one"' in body.decode()
            assert '"error"' in frames[-1] and "went silent" in frames[-1]
            assert clock.elapsed < 3
    finally:
        await upstream.close()


async def test_slow_first_byte_is_a_timeout_error():
    async with FakeOpenAI(Reply(delay_s=5)) as primary:
        async with gateway_for({"p": ("openai", primary.url, {"max_tries": 1, "first_byte_timeout_s": 0.5})}, [{"pattern": "m", "backend": "p"}]) as url:
            with Clock() as clock:
                status, headers, body = await post(url, stream=True)
            assert status == 504
            assert json.loads(body)["error"]["type"] == "timeout_error"
            assert clock.elapsed < 3


async def test_context_length_fallback_only_when_configured():
    too_long = Reply(prompt_too_long=(300000, 128000))
    async with FakeOpenAI(too_long, too_long) as small, FakeOpenAI(Reply(text="big context")) as big:
        backends = {"small": ("openai", small.url, {}), "big": ("openai", big.url, {})}
        mappings = [
            {"pattern": "m", "backend": "small", "fallbacks": ["big"], "fallback_on": ["context_length"]},
            {"pattern": "n", "backend": "small", "fallbacks": ["big"]},
        ]
        async with gateway_for(backends, mappings) as url:
            r = await client(url).chat.completions.create(model="m", messages=MSG)
            assert r.choices[0].message.content == "big context"
            with pytest.raises(openai.BadRequestError):
                await client(url).chat.completions.create(model="n", messages=MSG)
            assert len(small.requests) == 2 and len(big.requests) == 1


async def test_same_backend_and_model_never_tried_twice():
    async with FakeOpenAI(*[Reply(status=500)] * 6) as a:
        backends = {"a": ("openai", a.url, {"max_tries": 1})}
        # `a` and `a:m` name the same attempt for model m; only one request reaches the upstream.
        async with gateway_for(backends, [{"pattern": "m*", "backend": "a", "fallbacks": ["a:m"]}]) as url:
            status, _, body = await post(url, model="m")
            assert status == 502
            assert "backend a failed" in json.loads(body)["error"]["message"]
            assert len(a.requests) == 1


async def _whole_answering_upstream():
    """An OpenAI-compatible server that ignores `stream: true` and always answers with one JSON body."""
    from aiohttp import web

    async def handler(request):
        return web.json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole answer"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        })

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


@pytest.mark.parametrize("client_protocol", ["openai", "anthropic"])
async def test_upstream_that_ignores_stream_true_is_streamed_anyway(client_protocol):
    import anthropic

    upstream = await _whole_answering_upstream()
    try:
        async with gateway_for({"p": ("openai", str(upstream.make_url("/v1")), {})}, [{"pattern": "m", "backend": "p"}]) as url:
            if client_protocol == "openai":
                stream = await client(url).chat.completions.create(model="m", messages=MSG, stream=True)
                chunks = [c async for c in stream]
                assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "whole answer"
                assert chunks[-1].choices[0].finish_reason == "stop"
            else:
                an = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)
                async with an.messages.stream(model="m", max_tokens=10, messages=MSG) as s:
                    final = await s.get_final_message()
                assert final.content[0].text == "whole answer" and final.usage.output_tokens == 2
    finally:
        await upstream.close()


async def test_count_tokens_falls_through_the_chain():
    import anthropic

    async with FakeAnthropic() as down, FakeAnthropic() as up:
        down.push(Reply(status=529), endpoint="count_tokens")
        up.push(Reply(usage=Usage(input_tokens=77)), endpoint="count_tokens")
        backends = {"down": ("anthropic", down.url, {}), "up": ("anthropic", up.url, {})}
        async with gateway_for(backends, [{"pattern": "claude-*", "backend": "down", "fallbacks": ["up"]}]) as url:
            an = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)
            counted = await an.messages.count_tokens(model="claude-x", messages=MSG)
            assert counted.input_tokens == 77
