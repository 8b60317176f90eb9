"""Stream failures: before the first byte a real HTTP error, after it an in-stream error event and a
clean close; and a client that hangs up cancels the upstream request."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import anthropic
import openai
import pytest

from fakes.upstream import Reply
from tests.gateway.helpers import (
    ANTHROPIC_HEADERS,
    MODEL_FOR,
    OPENAI_HEADERS,
    PAIR_IDS,
    PAIRS,
    eventually,
    post,
    upstream,
)

pair = pytest.mark.parametrize(("client", "up_kind"), PAIRS, ids=PAIR_IDS)
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
HEADERS = {"openai": OPENAI_HEADERS, "anthropic": ANTHROPIC_HEADERS}
LONG_TEXT = " ".join(f"word{i}" for i in range(40))
# Frames the fakes send before the text starts: OpenAI a role chunk; Anthropic message_start, ping and
# content_block_start. "After the first byte" means after a few words of text.
TEXT_STARTED_AFTER = {"openai": 4, "anthropic": 6}


def _stream_body(client: str, model: str) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": "talk"}], "stream": True}
    if client == "anthropic":
        body["max_tokens"] = 500
    return body


@pair
@pytest.mark.parametrize(
    "failure", [Reply(status=429), Reply(status=503), Reply(status=400)], ids=["429", "503", "400"]
)
async def test_an_error_before_the_first_byte_is_an_http_error(gateway, client, up_kind, failure):
    up = upstream(gateway, up_kind)
    up.push(*[failure] * 5)
    r = await post(
        gateway.url + PATHS[client], _stream_body(client, MODEL_FOR[up_kind]), headers=HEADERS[client]
    )
    up.replies.clear()
    assert r.status >= 400
    assert r.status != 500
    assert r.headers["content-type"].startswith("application/json")
    body = r.json
    assert "error" in body
    if client == "anthropic":
        assert body["type"] == "error"
    assert r.headers["request-id"]


@pair
@pytest.mark.parametrize("how", ["error_event", "connection_dies"])
async def test_an_error_after_the_first_byte_is_an_error_event_then_a_clean_close(
    gateway, client, up_kind, how
):
    up = upstream(gateway, up_kind)
    n = TEXT_STARTED_AFTER[up_kind]
    fail = {"error_event_after_chunks": n} if how == "error_event" else {"die_after_chunks": n}
    up.push(Reply(text=LONG_TEXT, **fail))
    r = await post(
        gateway.url + PATHS[client], _stream_body(client, MODEL_FOR[up_kind]), headers=HEADERS[client]
    )
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = r.frames()
    assert r.body.endswith(b"\n\n")  # whole frames only, then the close
    if client == "anthropic":
        names = [event for event, _ in frames]
        assert names[0] == "message_start"
        assert "content_block_delta" in names
        assert names[-1] == "error"
        assert "message_stop" not in names
        err = json.loads(frames[-1][1])
        assert err["type"] == "error"
        assert set(err["error"]) >= {"type", "message"}
        assert err["error"]["message"]
    else:
        payloads = [data for _, data in frames]
        assert "[DONE]" not in payloads
        assert any("word0" in p for p in payloads[:-1])
        last = json.loads(payloads[-1])
        assert set(last) == {"error"}
        assert last["error"]["message"] and last["error"]["type"]
        assert all(event is None for event, _ in frames)


@pair
async def test_the_sdks_raise_on_an_in_stream_error(gateway, client, up_kind):
    up = upstream(gateway, up_kind)
    up.push(Reply(text=LONG_TEXT, error_event_after_chunks=TEXT_STARTED_AFTER[up_kind]))
    model = MODEL_FOR[up_kind]
    if client == "openai":
        with pytest.raises(openai.APIError):
            stream = await gateway.openai().chat.completions.create(
                model=model, messages=[{"role": "user", "content": "talk"}], stream=True
            )
            async for _ in stream:
                pass
    else:
        with pytest.raises(anthropic.APIStatusError):
            async with gateway.anthropic().messages.stream(
                model=model, max_tokens=500, messages=[{"role": "user", "content": "talk"}]
            ) as s:
                await s.get_final_message()


@pair
async def test_a_client_that_hangs_up_cancels_the_upstream_request(gateway, client, up_kind):
    up = upstream(gateway, up_kind)
    up.push(Reply(text=LONG_TEXT, chunk_delay_s=0.1))
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        resp = await session.post(
            gateway.url + PATHS[client],
            json=_stream_body(client, MODEL_FOR[up_kind]),
            headers=HEADERS[client],
        )
        assert resp.status == 200
        seen = b""
        while b"word1" not in seen:
            seen += await asyncio.wait_for(resp.content.readany(), 5)
        resp.close()  # hang up mid-answer
    await eventually(lambda: up.requests and up.requests[-1].disconnected, timeout=5)


@pair
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_client_that_hangs_up_while_waiting_cancels_the_upstream_request(
    gateway, client, up_kind, stream
):
    """Before any byte came back (a slow upstream, or a whole answer being waited for)."""
    up = upstream(gateway, up_kind)
    up.push(Reply(text="late", delay_s=30))
    body = {**_stream_body(client, MODEL_FOR[up_kind]), "stream": stream}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        request = asyncio.create_task(
            session.post(gateway.url + PATHS[client], json=body, headers=HEADERS[client])
        )
        await up.wait_for_requests(1)
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)
    await eventually(lambda: up.requests[-1].disconnected, timeout=5)
