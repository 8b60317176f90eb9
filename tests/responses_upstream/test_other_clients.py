"""Chat Completions and Anthropic clients (the official SDKs) answered by a backend that speaks only
the Responses API: text, usage, a parallel function-call round trip, reasoning whose encrypted state
comes back on the next turn (and never reaches another provider), an image, finish reasons, errors
and token counts."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from fakes.upstream import Reply, Thinking, ToolCall, Usage
from mlxgw.wires.anthropic.openai_state import MARKER
from tests.gateway.helpers import ask_anthropic, ask_openai
from tests.responses_upstream.helpers import CLAUDE, MODEL, sent_items

streamed = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
clients = pytest.mark.parametrize("client", ["openai", "anthropic"])

TOOLS = [
    ("get_weather", "Weather of a city", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    ("get_time", "Time in a zone", {"type": "object", "properties": {"tz": {"type": "string"}}}),
]
CALLS = [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Asia/Tokyo"})]
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def _tools(client: str) -> list[dict]:
    if client == "openai":
        return [{"type": "function", "function": {"name": n, "description": d, "parameters": p}} for n, d, p in TOOLS]
    return [{"name": n, "description": d, "input_schema": p} for n, d, p in TOOLS]


async def _ask(rig, client: str, *, stream: bool, **kw):
    if client == "openai":
        return await ask_openai(rig.openai(), stream=stream, **kw)
    kw.setdefault("max_tokens", 300)
    return await ask_anthropic(rig.anthropic(), stream=stream, **kw)


def _turn(client: str, text: str) -> list[dict]:
    if client == "openai":
        return [{"role": "system", "content": "Be terse."}, {"role": "user", "content": text}]
    return [{"role": "user", "content": text}]


@clients
@streamed
async def test_text_and_usage(rig, client, stream):
    up = rig.responses_up
    up.push(Reply(text="The quick brown fox", usage=Usage(input_tokens=100, output_tokens=7, cache_read_tokens=40)))
    extra = {} if client == "openai" else {"system": "Be terse."}
    ans = await _ask(rig, client, stream=stream, model=MODEL, messages=_turn(client, "hi"), **extra)
    assert ans.text == "The quick brown fox"
    assert ans.finish == ("stop" if client == "openai" else "end_turn")
    if client == "openai":
        assert (ans.input_tokens, ans.output_tokens) == (140, 7)  # prompt_tokens counts the cached ones
    else:
        assert (ans.input_tokens, ans.output_tokens) == (100, 7)
        assert ans.raw.usage.cache_read_input_tokens == 40

    rec = up.requests[-1]
    assert rec.path == "/v1/responses"
    sent = rec.json
    assert sent["model"] == MODEL
    assert sent["instructions"] == "Be terse."
    assert sent["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]
    assert sent["store"] is False and sent["include"] == ["reasoning.encrypted_content"]
    assert bool(sent.get("stream")) is stream
    if client == "anthropic":
        assert sent["max_output_tokens"] == 300


async def test_openai_stream_usage_chunk_has_the_cached_tokens(rig):
    rig.responses_up.push(Reply(text="ok", usage=Usage(input_tokens=10, output_tokens=1, cache_read_tokens=30)))
    stream = await rig.openai().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.prompt_tokens_details.cached_tokens) == (40, 1, 30)


@clients
@streamed
async def test_parallel_function_calls_round_trip(rig, client, stream):
    up = rig.responses_up
    up.push(Reply(tool_calls=[ToolCall(n, a) for n, a in CALLS], arg_chunks=3), Reply(text="Sunny, 14:00."))
    first = {"model": MODEL, "messages": _turn(client, "weather and time?"), "tools": _tools(client)}
    ans = await _ask(rig, client, stream=stream, **first)
    assert [(name, args) for _, name, args in ans.tool_calls] == CALLS
    ids = [call_id for call_id, _, _ in ans.tool_calls]
    assert all(ids) and len(set(ids)) == 2
    assert ans.finish == ("tool_calls" if client == "openai" else "tool_use")
    tools = up.requests[-1].json["tools"]
    assert tools == [
        {"type": "function", "name": n, "parameters": p, "strict": False, "description": d} for n, d, p in TOOLS
    ]

    if client == "openai":
        calls = [{"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for i, n, a in ans.tool_calls]
        history = [
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": ids[0], "content": "14 degrees"},
            {"role": "tool", "tool_call_id": ids[1], "content": "14:00"},
        ]
    else:
        history = [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in ans.raw.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": ids[0], "content": "14 degrees"},
                    {"type": "tool_result", "tool_use_id": ids[1], "content": [{"type": "text", "text": "14:00"}]},
                ],
            },
        ]
    final = await _ask(rig, client, stream=stream, **{**first, "messages": first["messages"] + history})
    assert final.text == "Sunny, 14:00."

    calls = sent_items(up, "function_call")
    assert [(c["call_id"], c["name"], json.loads(c["arguments"])) for c in calls] == [(i, n, a) for i, n, a in ans.tool_calls]
    outputs = sent_items(up, "function_call_output")
    assert [(o["call_id"], o["output"]) for o in outputs] == [(ids[0], "14 degrees"), (ids[1], "14:00")]
    kinds = [item["type"] for item in up.requests[-1].json["input"]]
    assert kinds == ["message", "function_call", "function_call", "function_call_output", "function_call_output"]


@streamed
async def test_reasoning_state_comes_back_to_the_responses_backend_on_the_next_turn(rig, stream):
    """An Anthropic client keeps OpenAI's encrypted reasoning in the thinking block's signature, and
    the next turn hands it back to the Responses backend as the reasoning item it was."""
    up = rig.responses_up
    up.push(Reply(thinking=Thinking("Let me think.", "gAAAA-encrypted-state"), text="42."), Reply(text="Yes."))
    first = {
        "model": MODEL,
        "max_tokens": 8000,
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "messages": [{"role": "user", "content": "meaning of life?"}],
    }
    ans = await ask_anthropic(rig.anthropic(), stream=stream, **first)
    assert ans.reasoning == "Let me think." and ans.text == "42."
    assert up.requests[0].json["reasoning"] == {"effort": "medium", "summary": "auto"}
    thinking = ans.raw.content[0]
    assert thinking.type == "thinking" and thinking.signature.startswith(MARKER)

    second = {
        **first,
        "messages": [
            *first["messages"],
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in ans.raw.content]},
            {"role": "user", "content": "sure?"},
        ],
    }
    assert (await ask_anthropic(rig.anthropic(), stream=stream, **second)).text == "Yes."
    reasoning = sent_items(up, "reasoning")
    assert len(reasoning) == 1
    assert reasoning[0]["encrypted_content"] == "gAAAA-encrypted-state"
    assert reasoning[0]["id"].startswith("rs_")  # the id the upstream gave its item, kept with the state
    assert thinking.signature == f"{MARKER}{reasoning[0]['id']}:gAAAA-encrypted-state"
    assert reasoning[0]["summary"] == [{"type": "summary_text", "text": "Let me think."}]
    kinds = [item["type"] for item in up.requests[-1].json["input"]]
    assert kinds == ["message", "reasoning", "message", "message"]

    # The same conversation moved to Anthropic (passthrough): OpenAI's state is left out there.
    rig.anthropic_up.push(Reply(text="Indeed."))
    moved = await ask_anthropic(rig.anthropic(), stream=stream, **{**second, "model": CLAUDE})
    assert moved.text == "Indeed."
    assistant = rig.anthropic_up.requests[-1].json["messages"][1]
    assert [b["type"] for b in assistant["content"]] == ["text"]
    assert MARKER not in rig.anthropic_up.requests[-1].body.decode()


async def test_anthropic_thinking_is_not_sent_to_the_responses_backend(rig):
    rig.anthropic_up.push(Reply(thinking=Thinking("Anthropic thoughts", "EqAnthropicSig=="), text="hello"))
    first = {
        "model": CLAUDE,
        "max_tokens": 8000,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "messages": [{"role": "user", "content": "hi"}],
    }
    ans = await ask_anthropic(rig.anthropic(), stream=False, **first)
    assert ans.raw.content[0].signature == "EqAnthropicSig=="
    rig.responses_up.push(Reply(text="ok"))
    history = [
        *first["messages"],
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in ans.raw.content]},
        {"role": "user", "content": "again"},
    ]
    assert (await ask_anthropic(rig.anthropic(), stream=False, **{**first, "model": MODEL, "messages": history})).text == "ok"
    sent = rig.responses_up.requests[-1].json
    assert sent_items(rig.responses_up, "reasoning") == []
    assert "EqAnthropicSig" not in json.dumps(sent)
    assert sent["reasoning"] == {"effort": "low", "summary": "auto"}


@streamed
async def test_openai_client_sees_the_reasoning_summary(rig, stream):
    rig.responses_up.push(Reply(thinking=Thinking("Pondering.", "gAAAA-x"), text="Done."))
    ans = await ask_openai(
        rig.openai(), stream=stream, model=MODEL, reasoning_effort="high", messages=[{"role": "user", "content": "q"}]
    )
    assert (ans.reasoning, ans.text) == ("Pondering.", "Done.")
    assert rig.responses_up.requests[-1].json["reasoning"] == {"effort": "high", "summary": "auto"}


@clients
@pytest.mark.parametrize("source", ["base64", "url"])
async def test_image(rig, client, source):
    rig.responses_up.push(Reply(text="a dot"))
    url = "https://example.com/cat.png"
    if client == "openai":
        image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}" if source == "base64" else url}}
    else:
        src = {"type": "base64", "media_type": "image/png", "data": PNG_B64} if source == "base64" else {"type": "url", "url": url}
        image = {"type": "image", "source": src}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}]
    assert (await _ask(rig, client, stream=False, model=MODEL, messages=messages)).text == "a dot"
    content = rig.responses_up.requests[-1].json["input"][0]["content"]
    expected = f"data:image/png;base64,{PNG_B64}" if source == "base64" else url
    assert content == [
        {"type": "input_text", "text": "what is this?"},
        {"type": "input_image", "image_url": expected, "detail": "auto"},
    ]


@clients
@streamed
async def test_max_output_tokens_is_a_length_finish(rig, client, stream):
    rig.responses_up.push(Reply(text="cut sh", finish="max_output_tokens"))
    ans = await _ask(rig, client, stream=stream, model=MODEL, messages=_turn(client, "long story"), max_tokens=20)
    assert ans.text == "cut sh"
    assert ans.finish == ("length" if client == "openai" else "max_tokens")
    assert rig.responses_up.requests[-1].json["max_output_tokens"] == 20


async def test_a_context_length_error_keeps_its_code(rig):
    rig.responses_up.push(Reply(prompt_too_long=(300000, 272000)))
    with pytest.raises(openai.BadRequestError) as caught:
        await rig.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "context_length_exceeded"
    assert "context window" in caught.value.message


async def test_stop_sequences_are_refused_by_name(rig):
    """The Responses API has no stop sequences: refused in the client's terms, never ignored."""
    with pytest.raises(openai.BadRequestError) as caught:
        await rig.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], stop=["END"])
    assert caught.value.param == "stop"
    with pytest.raises(anthropic.BadRequestError) as refused:
        await rig.anthropic().messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}], stop_sequences=["END"]
        )
    assert "stop_sequences" in refused.value.message
    assert rig.responses_up.requests == []


async def test_anthropic_count_tokens_asks_the_responses_counting_endpoint(rig):
    rig.responses_up.push(Reply(usage=Usage(input_tokens=321)), endpoint="count_tokens")
    count = await rig.anthropic().messages.count_tokens(
        model=MODEL, system="sys", messages=[{"role": "user", "content": "count me"}], tools=_tools("anthropic")
    )
    assert count.input_tokens == 321
    rec = rig.responses_up.requests[-1]
    assert rec.path == "/v1/responses/input_tokens"
    assert rec.bearer is not None and "client-key" not in rec.bearer
    assert set(rec.json) == {"model", "instructions", "input", "tools"}
    assert rec.json["input"][0]["content"] == [{"type": "input_text", "text": "count me"}]


async def test_an_error_event_after_the_first_text_is_the_clients_error_event(rig):
    # created, in_progress, the message item and its part, two deltas: then the error event.
    rig.responses_up.push(Reply(text="one two three four", error_event_after_chunks=6))
    stream = await rig.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True)
    text = ""
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert text == "one two "
