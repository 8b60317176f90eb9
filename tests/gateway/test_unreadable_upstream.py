"""Upstream data the gateway cannot read (a field of the wrong type, anywhere in a stream frame or a
whole body): before the first byte it is a bad gateway that fails over (a 502 when alone), after it
an error event and a clean close; never a 500, never a second answer inside the first."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator

import anthropic
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.upstream import FakeAnthropic, FakeOpenAI, Reply
from mlxgw.canonical import ChatRequest, Start, TextDelta
from mlxgw.server.app import create_app
from mlxgw.workspace import Workspace
from tests.failover.rig import gateway_for, write_config
from tests.gateway.helpers import post
from tests.reliability.sse import error_shape_ok, frames, judge

PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
HEADERS = {"openai": {}, "anthropic": {"anthropic-version": "2023-06-01"}}
FALLBACK_TEXT = "Hello from fake-openai"  # what the healthy second backend says
# The last frame before the first byte reaches the client (the first text delta).
FIRST_BYTE_AT = {"openai": 1, "anthropic": 2}
ONE_TRY = {"max_tries": 1, "breaker_cooldown_s": 0}  # one upstream request per attempt; a circuit never stays open

# ---- what a well-behaved upstream sends: one text, one tool call ---------------------------------

OPENAI_CHUNKS = [
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]},
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"tool_calls": [
         {"index": 0, "id": "call_1", "type": "function", "function": {"name": "look", "arguments": ""}}]},
         "finish_reason": None}]},
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"q": 1}'}}]},
                  "finish_reason": None}]},
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
     "usage": {"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 0}}},
]
ANTHROPIC_EVENTS = [
    {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                                          "content": [], "stop_reason": None, "stop_sequence": None,
                                          "usage": {"input_tokens": 9, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1,
     "content_block": {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {}}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"q": 1}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
     "usage": {"output_tokens": 4}},
    {"type": "message_stop"},
]
OPENAI_BODY = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Hello",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q": 1}'}}]}}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 0}},
}
ANTHROPIC_BODY = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "tool_use",
    "stop_sequence": None,
    "content": [{"type": "text", "text": "Hello"}, {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": 1}}],
    "usage": {"input_tokens": 9, "output_tokens": 4},
}


def sse(protocol: str, payloads: list[dict]) -> list[bytes]:
    if protocol == "openai":
        return [b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads] + [b"data: [DONE]\n\n"]
    return [f"event: {p['type']}\ndata: {json.dumps(p)}\n\n".encode() for p in payloads]


def paths(value, prefix=()) -> list[tuple]:
    """Every place in a JSON value: each object member and array item, nested."""
    found = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


def json_kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


# Values of every JSON type but null (null reads as absent, which is not a wrong type).
WRONG = {"boolean": st.booleans(), "number": st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False),
         "string": st.text(max_size=5), "array": st.lists(st.integers(0, 3), max_size=2),
         "object": st.dictionaries(st.sampled_from(["x", "type", "text"]), st.integers(0, 3), max_size=2)}


@st.composite
def wrong_typed(draw, template):
    """`template` with one member or item anywhere replaced by a value of another JSON type."""
    value = copy.deepcopy(template)
    path = draw(st.sampled_from(paths(value)))
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    kind = draw(st.sampled_from([k for k in WRONG if k != json_kind(parent[path[-1]])]))
    parent[path[-1]] = draw(WRONG[kind])
    return value


@st.composite
def broken_answers(draw):
    """(upstream protocol, stream, the raw answer, which frame is broken or None for a whole body)."""
    up = draw(st.sampled_from(["openai", "anthropic"]))
    if draw(st.booleans()):
        payloads = copy.deepcopy(OPENAI_CHUNKS if up == "openai" else ANTHROPIC_EVENTS)
        at = draw(st.integers(0, len(payloads) - 1))
        payloads[at] = draw(wrong_typed(payloads[at]))
        return up, True, sse(up, payloads), at
    body = draw(wrong_typed(OPENAI_BODY if up == "openai" else ANTHROPIC_BODY))
    return up, False, json.dumps(body).encode(), None


def request_body(client: str, model: str, stream: bool) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    if client == "anthropic":
        body["max_tokens"] = 64
    return body


def answer_text(client: str, stream: bool, body: bytes) -> str:
    """The text a client of `client`'s protocol read from a 200 answer, checking its types on the way."""
    if not stream:
        parsed = json.loads(body)
        if client == "openai":
            content = parsed["choices"][0]["message"]["content"]
            assert isinstance(content, str | None)
            return content or ""
        assert all(isinstance(b["text"], str) for b in parsed["content"] if b["type"] == "text")
        return "".join(b["text"] for b in parsed["content"] if b["type"] == "text")
    text = ""
    for _, data in frames(body):
        if data == "[DONE]":
            continue
        payload = json.loads(data)
        if client == "openai":
            for choice in payload.get("choices", []):
                piece = choice["delta"].get("content")
                assert isinstance(piece, str | None)
                text += piece or ""
        elif payload["type"] == "content_block_delta" and payload["delta"]["type"] == "text_delta":
            assert isinstance(payload["delta"]["text"], str)
            text += payload["delta"]["text"]
    return text


@pytest.fixture
async def rig() -> AsyncIterator[tuple[str, dict]]:
    """Broken primaries `po` (OpenAI) and `pa` (Anthropic), each mapped alone and with a healthy second."""
    async with FakeOpenAI() as po, FakeAnthropic() as pa, FakeOpenAI() as ok:
        backends = {"po": ("openai", po.url, ONE_TRY), "pa": ("anthropic", pa.url, ONE_TRY), "ok": ("openai", ok.url, {})}
        mappings = [{"pattern": f"{name}-alone", "backend": name} for name in ("po", "pa")]
        mappings += [{"pattern": f"{name}-chain", "backend": name, "fallbacks": ["ok"]} for name in ("po", "pa")]
        async with gateway_for(backends, mappings) as url:
            yield url, {"openai": po, "anthropic": pa}


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=broken_answers(), client=st.sampled_from(["openai", "anthropic"]), chained=st.booleans())
async def test_unreadable_upstream_data_never_breaks_the_answer(rig, case, client, chained):
    url, primaries = rig
    up, stream, raw, broken_at = case
    primary = "po" if up == "openai" else "pa"
    primaries[up].push(Reply(raw=raw))
    model = f"{primary}-{'chain' if chained else 'alone'}"
    r = await post(url + PATHS[client], request_body(client, model, stream), headers=HEADERS[client])
    primaries[up].replies.clear()

    assert r.status != 500, r.body
    verdict = judge(client, r.status, r.body) if stream or r.status != 200 else "ok"
    if r.status != 200:
        # Alone, an unreadable answer is a bad gateway; with a healthy second backend it never shows.
        assert not chained and r.status == 502 and verdict == "http_error", (r.status, r.body)
        assert error_shape_ok(client, r.json)
        return
    served = r.headers["x-mlxgw-backend"].split(":")[0]
    if served == "ok":
        assert verdict == "ok" and answer_text(client, stream, r.body) == FALLBACK_TEXT
        return
    assert served == primary
    if client == up:
        # Passthrough relays the upstream's own bytes: all of them, or those before an error frame.
        sent = b"".join(raw) if stream else raw
        if verdict == "error_event":
            assert sent.startswith(r.body[: r.body.rindex(b"\n\n", 0, len(r.body) - 2) + 2]), r.body
        else:
            assert r.body == sent
        return
    # Translated: either the wrong value was one mlxgw never reads (the answer is intact), or it
    # came after the first byte: an error event, then the end.
    assert verdict in ("ok", "error_event"), (verdict, r.body)
    if verdict == "ok":
        assert answer_text(client, stream, r.body) == "Hello"
    else:
        assert stream and broken_at is not None and broken_at > FIRST_BYTE_AT[up]


# ---- the cases named in the issue -----------------------------------------------------------------


def _openai_chunks_with(at: int, delta: dict) -> list[bytes]:
    chunks = copy.deepcopy(OPENAI_CHUNKS)
    chunks[at]["choices"][0]["delta"] = delta
    return sse("openai", chunks)


async def test_tool_calls_5_after_text_ends_an_anthropic_stream_with_an_error_event(rig):
    """The trigger seen: a TypeError in the OpenAI stream parser used to write a second HTTP status
    line into the open body (the SDK: `RemoteProtocolError: illegal chunk header`)."""
    url, primaries = rig
    primaries["openai"].push(Reply(raw=_openai_chunks_with(3, {"tool_calls": 5})))
    client = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0, timeout=10)
    seen = ""
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(model="po-chain", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
            async for text in s.text_stream:
                seen += text
    await client.close()
    assert seen == "Hello"
    assert "tool_calls" in str(caught.value) and "po" in str(caught.value)


@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_tool_calls_5_before_the_first_byte_fails_over(rig, client):
    url, primaries = rig
    for model, expected in (("po-chain", 200), ("po-alone", 502)):
        primaries["openai"].push(Reply(raw=_openai_chunks_with(1, {"tool_calls": 5})))
        r = await post(url + PATHS[client], request_body(client, model, True), headers=HEADERS[client])
        assert r.status == expected, r.body
        if expected == 200:
            assert r.headers["x-mlxgw-backend"] == "ok:po-chain"
            assert answer_text(client, True, r.body) == FALLBACK_TEXT
        else:
            assert "backend po" in r.body.decode() and "tool_calls" in r.body.decode()


@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_a_whole_body_with_a_wrong_type_fails_over(rig, client):
    url, primaries = rig
    body = copy.deepcopy(ANTHROPIC_BODY)
    body["content"][0]["text"] = ["not", "text"]
    for model, expected in (("pa-chain", 200), ("pa-alone", 502)):
        primaries["anthropic"].push(Reply(raw=json.dumps(body).encode()))
        r = await post(url + PATHS[client], request_body(client, model, False), headers=HEADERS[client])
        assert r.status == expected, r.body
        if expected == 200:
            assert answer_text(client, False, r.body) == FALLBACK_TEXT


# ---- a gateway bug after the first byte -------------------------------------------------------------


class BreaksMidAnswer:
    """A backend that starts answering, then fails with an exception that is nobody's domain error."""

    name = "po"
    kind = "openai"

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator:
        yield Start("x", model, 3)
        yield TextDelta("partial")
        raise RuntimeError("secret internal detail")

    async def count_tokens(self, request: ChatRequest, model: str) -> int:
        return 1

    async def close(self) -> None:
        pass


class BreaksBeforeAnswering(BreaksMidAnswer):
    """Slow to start (the keep-alives commit the answer meanwhile), then fails with a bug."""

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator:
        await asyncio.sleep(0.5)
        raise RuntimeError("secret internal detail")
        yield


@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("backend", [BreaksMidAnswer, BreaksBeforeAnswering], ids=["mid-answer", "after-keepalives"])
async def test_any_exception_after_the_first_byte_is_an_error_event_and_a_clean_close(client, backend, caplog):
    write_config({"po": ("openai", "http://127.0.0.1:9/v1", {})}, [{"pattern": "m", "backend": "po"}], {"keepalive_s": 0.1})
    workspace = Workspace.open()
    app = create_app(workspace.settings, workspace=workspace, backends={"po": backend()})
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        url = str(server.make_url("")).rstrip("/")
        with caplog.at_level(logging.ERROR, logger="mlxgw.server"):
            r = await post(url + PATHS[client], request_body(client, "m", True), headers=HEADERS[client])
        assert r.status == 200
        assert judge(client, r.status, r.body) == "error_event", r.body
        assert (b"partial" in r.body) == (backend is BreaksMidAnswer)
        assert b"HTTP/1.1" not in r.body and b"secret" not in r.body and b"Traceback" not in r.body
        logged = [rec for rec in caplog.records if rec.exc_info and isinstance(rec.exc_info[1], RuntimeError)]
        assert logged, "the traceback belongs in the daemon's log"
        r = await post(url + PATHS[client], request_body(client, "m", True), headers=HEADERS[client])
        assert r.status == 200  # the connection and the gateway are fine afterwards
    finally:
        await server.close()
