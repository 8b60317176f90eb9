"""The four client/upstream pairs, streamed and whole, through the official SDKs: text, parallel tool
calls and their results, images, thinking, stop sequences, usage, temperature 0."""

from __future__ import annotations

import asyncio
import json

import anthropic
import openai
import pytest

from fakes.upstream import Reply, Thinking, ToolCall, Usage
from tests.gateway.helpers import (
    ANTHROPIC_HEADERS,
    MODEL_FOR,
    OPENAI_HEADERS,
    PAIR_IDS,
    PAIRS,
    ask,
    post,
    upstream,
)

pair = pytest.mark.parametrize(("client", "up_kind"), PAIRS, ids=PAIR_IDS)
streamed = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])

USER = "What is the weather in Paris and the time in Tokyo?"


def _request(client: str, model: str, text: str = USER, **extra) -> dict:
    """A one-turn request in the client's protocol."""
    if client == "openai":
        return {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return {"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": text}], **extra}


# ---- text and usage ----------------------------------------------------------------------------


@pair
@streamed
async def test_text_and_usage(gateway, client, up_kind, stream):
    up = upstream(gateway, up_kind)
    up.push(Reply(text="The quick brown fox", usage=Usage(input_tokens=123, output_tokens=7)))
    ans = await ask(gateway, client, stream=stream, **_request(client, MODEL_FOR[up_kind]))
    assert ans.text == "The quick brown fox"
    assert ans.finish == ("stop" if client == "openai" else "end_turn")
    assert (ans.input_tokens, ans.output_tokens) == (123, 7)
    sent = up.requests[-1].json
    assert sent["model"] == MODEL_FOR[up_kind]
    assert bool(sent.get("stream")) is stream
    if up_kind == "openai" and stream:
        assert sent["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("up_kind", ["openai", "anthropic"])
async def test_anthropic_stream_message_start_carries_input_tokens(gateway, up_kind):
    """Zeros in message_start broke Claude Code: the real count (or, when the upstream reports it only
    at the end, the real count in message_delta and a non-zero estimate up front)."""
    up = upstream(gateway, up_kind)
    up.push(Reply(text="hi there", usage=Usage(input_tokens=321, output_tokens=2)))
    body = _request("anthropic", MODEL_FOR[up_kind], stream=True)
    raw = await post(gateway.url + "/v1/messages", body, headers=ANTHROPIC_HEADERS)
    assert raw.status == 200, raw.body
    events = raw.events()
    assert [e["type"] for e in events][0] == "message_start"
    start_usage = events[0]["message"]["usage"]
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["usage"]["output_tokens"] == 2
    if up_kind == "anthropic":
        assert start_usage["input_tokens"] == 321
    else:
        assert start_usage["input_tokens"] > 0
        assert delta["usage"]["input_tokens"] == 321
    assert events[-1]["type"] == "message_stop"


@pytest.mark.parametrize("up_kind", ["openai", "anthropic"])
async def test_openai_stream_include_usage_gives_a_final_usage_chunk(gateway, up_kind):
    up = upstream(gateway, up_kind)
    up.push(Reply(text="hi there", usage=Usage(input_tokens=55, output_tokens=3)))
    body = _request("openai", MODEL_FOR[up_kind], stream=True, stream_options={"include_usage": True})
    raw = await post(gateway.url + "/v1/chat/completions", body, headers=OPENAI_HEADERS)
    assert raw.status == 200
    frames = raw.frames()
    assert frames[-1] == (None, "[DONE]")
    last = raw.events()[-1]
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == 55
    assert last["usage"]["completion_tokens"] == 3


# ---- parallel tool calls, and their results going back -----------------------------------------

TOOLS_OPENAI = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
        },
    },
]
TOOLS_ANTHROPIC = [
    {
        "name": "get_weather",
        "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}},
]
CALLS = [("get_weather", {"city": "Paris", "unit": "celsius"}), ("get_time", {"tz": "Asia/Tokyo"})]


@pair
@streamed
async def test_parallel_tool_calls_round_trip(gateway, client, up_kind, stream):
    up = upstream(gateway, up_kind)
    up.push(
        Reply(tool_calls=[ToolCall(n, a) for n, a in CALLS], interleave=True, arg_chunks=4),
        Reply(text="Sunny, 14:00."),
    )
    tools = TOOLS_OPENAI if client == "openai" else TOOLS_ANTHROPIC
    first = _request(client, MODEL_FOR[up_kind], tools=tools)
    ans = await ask(gateway, client, stream=stream, **first)

    assert [(name, args) for _, name, args in ans.tool_calls] == CALLS
    ids = [call_id for call_id, _, _ in ans.tool_calls]
    assert all(ids) and len(set(ids)) == 2
    assert ans.finish == ("tool_calls" if client == "openai" else "tool_use")
    if client == "anthropic":
        blocks = ans.raw.content
        assert [b.type for b in blocks] == ["tool_use", "tool_use"]

    # The client runs the tools (one fails) and sends the results back.
    if client == "openai":
        second = {
            **first,
            "messages": [
                *first["messages"],
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                        for i, n, a in ans.tool_calls
                    ],
                },
                {"role": "tool", "tool_call_id": ids[0], "content": "14 degrees, sunny"},
                {"role": "tool", "tool_call_id": ids[1], "content": "Error: tz database unavailable"},
            ],
        }
    else:
        second = {
            **first,
            "messages": [
                *first["messages"],
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in ans.raw.content]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": ids[0], "content": "14 degrees, sunny"},
                        {
                            "type": "tool_result",
                            "tool_use_id": ids[1],
                            "content": [{"type": "text", "text": "tz database unavailable"}],
                            "is_error": True,
                        },
                    ],
                },
            ],
        }
    final = await ask(gateway, client, stream=stream, **second)
    assert final.text == "Sunny, 14:00."

    sent = up.requests[-1].json
    if up_kind == "openai":
        msgs = sent["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "tool"]
        calls = msgs[1]["tool_calls"]
        assert [
            (c["id"], c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls
        ] == [(i, "function", n, a) for i, n, a in ans.tool_calls]
        assert msgs[2] == {"role": "tool", "tool_call_id": ids[0], "content": "14 degrees, sunny"}
        assert msgs[3]["role"] == "tool" and msgs[3]["tool_call_id"] == ids[1]
        assert "tz database unavailable" in msgs[3]["content"] and "error" in msgs[3]["content"].lower()
        assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
        assert all(t["type"] == "function" for t in sent["tools"])
    else:
        msgs = sent["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
        assistant = [b for b in msgs[1]["content"] if b["type"] != "text" or b["text"]]
        assert [(b["type"], b["id"], b["name"], b["input"]) for b in assistant] == [
            ("tool_use", i, n, a) for i, n, a in ans.tool_calls
        ]
        results = msgs[2]["content"]
        assert [r["type"] for r in results] == ["tool_result", "tool_result"]
        assert [r["tool_use_id"] for r in results] == ids
        assert _result_text(results[0]) == "14 degrees, sunny"
        assert not results[0].get("is_error")
        assert "tz database unavailable" in _result_text(results[1])
        if client == "anthropic":
            assert results[1]["is_error"] is True
        assert [t["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
        assert all("input_schema" in t for t in sent["tools"])


def _result_text(block: dict) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "".join(c["text"] for c in content or [] if c["type"] == "text")


async def test_interleaved_openai_calls_reach_an_anthropic_client_as_consecutive_blocks(gateway):
    """Raw SSE: each tool_use block opens, gets the whole JSON of its input and closes before the next."""
    gateway.openai_up.push(
        Reply(tool_calls=[ToolCall(n, a) for n, a in CALLS], interleave=True, arg_chunks=4)
    )
    body = _request("anthropic", "gpt-4o", tools=TOOLS_ANTHROPIC, stream=True)
    raw = await post(gateway.url + "/v1/messages", body, headers=ANTHROPIC_HEADERS)
    events = [e for e in raw.events() if e["type"].startswith("content_block")]
    open_index = None
    blocks: dict[int, str] = {}
    for e in events:
        if e["type"] == "content_block_start":
            assert open_index is None, "a block started while another was open"
            assert e["index"] == len(blocks)
            assert e["content_block"]["type"] == "tool_use"
            open_index = e["index"]
            blocks[open_index] = ""
        elif e["type"] == "content_block_delta":
            assert e["index"] == open_index
            blocks[open_index] += e["delta"]["partial_json"]
        else:
            assert e["index"] == open_index
            open_index = None
    assert [json.loads(v) for _, v in sorted(blocks.items())] == [a for _, a in CALLS]


# ---- images ------------------------------------------------------------------------------------

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
IMAGE_URL = "http://127.0.0.1:9/cat.png"


@pair
@pytest.mark.parametrize("source", ["base64", "url"])
async def test_image_reaches_the_upstream_in_its_own_format(gateway, client, up_kind, source):
    up = upstream(gateway, up_kind)
    up.push(Reply(text="a cat"))
    if client == "openai":
        url = f"data:image/png;base64,{PNG_B64}" if source == "base64" else IMAGE_URL
        content = [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": url}},
        ]
        req = {"model": MODEL_FOR[up_kind], "messages": [{"role": "user", "content": content}]}
    else:
        src = (
            {"type": "base64", "media_type": "image/png", "data": PNG_B64}
            if source == "base64"
            else {"type": "url", "url": IMAGE_URL}
        )
        content = [{"type": "text", "text": "what is this?"}, {"type": "image", "source": src}]
        req = {
            "model": MODEL_FOR[up_kind],
            "max_tokens": 50,
            "messages": [{"role": "user", "content": content}],
        }
    ans = await ask(gateway, client, stream=False, **req)
    assert ans.text == "a cat"
    parts = up.requests[-1].json["messages"][-1]["content"]
    images = [p for p in parts if p["type"] in ("image", "image_url")]
    assert len(images) == 1
    if up_kind == "openai":
        expected = f"data:image/png;base64,{PNG_B64}" if source == "base64" else IMAGE_URL
        assert images[0]["type"] == "image_url"
        assert images[0]["image_url"]["url"] == expected
    else:
        assert images[0]["type"] == "image"
        if source == "base64":
            assert images[0]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG_B64}
        else:
            assert images[0]["source"] == {"type": "url", "url": IMAGE_URL}


# ---- thinking ----------------------------------------------------------------------------------

SIGNATURE = "EqQBCkYIBxgCKkBz+/sig==\u00e9with/odd+bytes=="


@streamed
async def test_thinking_signature_is_kept_byte_for_byte_in_anthropic_passthrough(gateway, stream):
    up = gateway.anthropic_up
    up.push(Reply(text="42", thinking=Thinking("Let me think. 6 times 7.", SIGNATURE)), Reply(text="ok"))
    req = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 4000,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "messages": [{"role": "user", "content": "6*7?"}],
    }
    ans = await ask(gateway, "anthropic", stream=stream, **req)
    thinking = [b for b in ans.raw.content if b.type == "thinking"]
    assert len(thinking) == 1
    assert thinking[0].signature == SIGNATURE
    assert thinking[0].thinking == "Let me think. 6 times 7."
    assert up.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 2000}

    # The next turn sends the thinking block back; the upstream gets it unchanged.
    history = [b.model_dump(exclude_none=True) for b in ans.raw.content]
    req["messages"] = [
        *req["messages"],
        {"role": "assistant", "content": history},
        {"role": "user", "content": "and 7*8?"},
    ]
    await ask(gateway, "anthropic", stream=stream, **req)
    sent = up.requests[-1]
    assert sent.json["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "Let me think. 6 times 7.",
        "signature": SIGNATURE,
    }
    assert (
        json.dumps(SIGNATURE, ensure_ascii=False).encode() in sent.body
        or json.dumps(SIGNATURE).encode() in sent.body
    )


@streamed
async def test_anthropic_thinking_reaches_an_openai_client_as_reasoning_content(gateway, stream):
    gateway.anthropic_up.push(Reply(text="42", thinking=Thinking("six sevens", SIGNATURE)))
    ans = await ask(
        gateway,
        "openai",
        stream=stream,
        model="claude-sonnet-4-6",
        messages=[{"role": "user", "content": "6*7?"}],
        reasoning_effort="low",
    )
    assert ans.text == "42"
    assert ans.reasoning == "six sevens"
    sent = gateway.anthropic_up.requests[-1].json
    assert sent["thinking"]["type"] == "enabled"
    assert sent["max_tokens"] > sent["thinking"]["budget_tokens"]


@streamed
async def test_openai_reasoning_reaches_an_anthropic_client_as_thinking(gateway, stream):
    gateway.openai_up.push(Reply(text="42", thinking="six sevens"))
    ans = await ask(gateway, "anthropic", stream=stream, **_request("anthropic", "gpt-4o", "6*7?"))
    assert ans.text == "42"
    assert ans.reasoning == "six sevens"


async def test_signed_thinking_in_history_is_not_sent_to_an_openai_upstream(gateway):
    gateway.openai_up.push(Reply(text="56"))
    messages = [
        {"role": "user", "content": "6*7?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "six sevens", "signature": SIGNATURE},
                {"type": "text", "text": "42"},
            ],
        },
        {"role": "user", "content": "7*8?"},
    ]
    ans = await ask(gateway, "anthropic", stream=False, model="gpt-4o", max_tokens=100, messages=messages)
    assert ans.text == "56"
    sent = gateway.openai_up.requests[-1].json
    assert sent["messages"] == [
        {"role": "user", "content": "6*7?"},
        {"role": "assistant", "content": "42"},
        {"role": "user", "content": "7*8?"},
    ]


# ---- stop sequences ----------------------------------------------------------------------------


@pair
@streamed
async def test_stop_sequences(gateway, client, up_kind, stream):
    up = upstream(gateway, up_kind)
    # The Anthropic upstream says which stop string matched; OpenAI only says "stop".
    up.push(Reply(text="one two", stop_sequence="END") if up_kind == "anthropic" else Reply(text="one two"))
    stop_field = {"stop": ["END", "###"]} if client == "openai" else {"stop_sequences": ["END", "###"]}
    ans = await ask(gateway, client, stream=stream, **_request(client, MODEL_FOR[up_kind], **stop_field))
    assert ans.text == "one two"
    sent = up.requests[-1].json
    if up_kind == "openai":
        assert sent["stop"] == ["END", "###"]
    else:
        assert sent["stop_sequences"] == ["END", "###"]
    if client == "openai":
        assert ans.finish == "stop"
    elif up_kind == "anthropic":
        assert (ans.finish, ans.stop_sequence) == ("stop_sequence", "END")
    else:
        assert ans.finish == "end_turn"


# ---- temperature 0 -----------------------------------------------------------------------------


@pair
@streamed
async def test_temperature_zero_reaches_the_upstream_as_zero(gateway, client, up_kind, stream):
    up = upstream(gateway, up_kind)
    extra = {"temperature": 0} if client == "openai" else {"extra_body": {"temperature": 0}}
    await ask(gateway, client, stream=stream, **_request(client, MODEL_FOR[up_kind], **extra))
    sent = up.requests[-1].json
    assert "temperature" in sent
    assert sent["temperature"] == 0


# ---- the sync SDK clients ----------------------------------------------------------------------


@pair
@streamed
async def test_sync_clients(gateway, client, up_kind, stream):
    up = upstream(gateway, up_kind)
    up.push(Reply(text="sync hello", usage=Usage(input_tokens=9, output_tokens=2)))
    model = MODEL_FOR[up_kind]

    def run_openai() -> tuple[str, int | None]:
        with openai.OpenAI(
            base_url=gateway.url + "/v1", api_key="client-key", max_retries=0, timeout=10
        ) as c:
            msgs = [{"role": "user", "content": "hi"}]
            if not stream:
                r = c.chat.completions.create(model=model, messages=msgs)
                return r.choices[0].message.content, r.usage.prompt_tokens
            chunks = list(
                c.chat.completions.create(
                    model=model, messages=msgs, stream=True, stream_options={"include_usage": True}
                )
            )
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            return text, chunks[-1].usage.prompt_tokens

    def run_anthropic() -> tuple[str, int | None]:
        with anthropic.Anthropic(base_url=gateway.url, api_key="client-key", max_retries=0, timeout=10) as c:
            kw = {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
            if not stream:
                m = c.messages.create(**kw)
            else:
                with c.messages.stream(**kw) as s:
                    m = s.get_final_message()
            return m.content[0].text, m.usage.input_tokens

    text, input_tokens = await asyncio.to_thread(run_openai if client == "openai" else run_anthropic)
    assert (text, input_tokens) == ("sync hello", 9)


# ---- translation details strict clients depend on ----------------------------------------------


async def test_openai_client_to_anthropic_upstream_details(gateway):
    up = gateway.anthropic_up
    await ask(
        gateway,
        "openai",
        stream=False,
        model="claude-sonnet-4-6",
        messages=[
            {"role": "system", "content": "First rule."},
            {"role": "developer", "content": "Second rule."},
            {"role": "user", "content": "hi"},
            {"role": "user", "content": "again"},
        ],
        temperature=1.7,
        tools=TOOLS_OPENAI,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
        stop="END",
    )
    sent = up.requests[-1].json
    system_text = (
        sent["system"] if isinstance(sent["system"], str) else " ".join(b["text"] for b in sent["system"])
    )
    assert "First rule." in system_text and "Second rule." in system_text
    assert [m["role"] for m in sent["messages"]] == ["user"]  # consecutive user turns merged
    assert sent["temperature"] == 1  # clamped to Anthropic's range
    assert sent["max_tokens"] > 0
    assert sent["tool_choice"] == {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}
    assert sent["stop_sequences"] == ["END"]

    await ask(
        gateway,
        "openai",
        stream=False,
        model="claude-x",
        messages=[{"role": "user", "content": "x"}],
        tools=TOOLS_OPENAI,
        tool_choice="required",
    )
    assert up.requests[-1].json["tool_choice"] == {"type": "any"}


async def test_anthropic_client_to_openai_upstream_details(gateway):
    up = gateway.openai_up
    base = {
        "model": "gpt-4o",
        "max_tokens": 99,
        "messages": [{"role": "user", "content": "x"}],
        "tools": TOOLS_ANTHROPIC,
    }
    await ask(gateway, "anthropic", stream=False, **base, tool_choice={"type": "any"}, system="Sys A")
    sent = up.requests[-1].json
    assert sent["tool_choice"] == "required"
    assert sent["messages"][0] == {"role": "system", "content": "Sys A"}
    assert sent["max_tokens"] == 99 or sent.get("max_completion_tokens") == 99
    await ask(gateway, "anthropic", stream=False, **base, tool_choice={"type": "tool", "name": "get_weather"})
    assert up.requests[-1].json["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


@streamed
async def test_cached_tokens_are_translated_both_ways(gateway, stream):
    usage = Usage(input_tokens=10, output_tokens=2, cache_read_tokens=100, cache_creation_tokens=5)
    gateway.anthropic_up.push(Reply(text="hi", usage=usage))
    ans = await ask(gateway, "openai", stream=stream, **_request("openai", "claude-x"))
    chunk_or_completion = ans.raw[-1] if stream else ans.raw
    assert chunk_or_completion.usage.prompt_tokens == 115  # OpenAI counts cached prompt tokens in
    assert chunk_or_completion.usage.prompt_tokens_details.cached_tokens == 100
    assert ans.output_tokens == 2

    gateway.openai_up.push(Reply(text="hi", usage=usage))
    ans = await ask(gateway, "anthropic", stream=stream, **_request("anthropic", "gpt-4o"))
    u = ans.raw.usage
    assert (u.input_tokens + (u.cache_creation_input_tokens or 0), u.cache_read_input_tokens) == (15, 100)
    assert u.output_tokens == 2
