"""Streams rendered by us and read by the official SDKs; upstream streams parsed by us."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from mlxgw.canonical import (
    Finish,
    RedactedThinking,
    Start,
    TextDelta,
    ThinkingDelta,
    ThinkingSignature,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    collect,
)
from mlxgw.errors import GatewayError, UpstreamError
from mlxgw.wires import anthropic as anth
from mlxgw.wires import openai as oai
from mlxgw.wires.sse import SSEDecoder, frame
from tests.protocols.helpers import render_all

ASK = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def chunk(delta=None, finish=None, usage=None, choices=True) -> bytes:
    body = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up"}
    body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []
    if usage:
        body["usage"] = usage
    return frame(json.dumps(body))


def call(index, call_id=None, name=None, arguments=""):
    fragment = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        fragment |= {"id": call_id, "type": "function"}
        fragment["function"]["name"] = name
    return {"tool_calls": [fragment]}


# OpenAI streams parallel calls interleaved by index.
OPENAI_PARALLEL = (
    chunk({"role": "assistant", "content": ""})
    + chunk({"content": "Checking "})
    + chunk({"content": "both."})
    + chunk(call(0, "call_w", "weather"))
    + chunk(call(1, "call_t", "time"))
    + chunk(call(0, arguments='{"city": '))
    + chunk(call(1, arguments='{"tz": "C'))
    + chunk(call(0, arguments='"Paris"}'))
    + chunk(call(1, arguments='ET"}'))
    + chunk(finish="tool_calls")
    + chunk(
        choices=False,
        usage={
            "prompt_tokens": 40,
            "completion_tokens": 25,
            "total_tokens": 65,
            "prompt_tokens_details": {"cached_tokens": 30},
        },
    )
    + frame("[DONE]")
)


def parse_stream(parser, payload: bytes) -> list:
    decoder = SSEDecoder()
    events = []
    for sse in decoder.feed(payload) + decoder.flush():
        events.extend(parser.feed(sse.event, sse.data))
    return events


def frames(payload: bytes) -> list[tuple[str | None, dict]]:
    decoder = SSEDecoder()
    return [
        (e.event, json.loads(e.data)) for e in decoder.feed(payload) + decoder.flush() if e.data != "[DONE]"
    ]


def test_interleaved_openai_tool_calls_become_consecutive_anthropic_blocks(anthropic_sdk):
    parser = oai.StreamParser()
    events = parse_stream(parser, OPENAI_PARALLEL)
    assert parser.finished
    body = render_all(anth.StreamRenderer("claude-gw", "req_1"), events)

    sent = frames(body)
    assert all(name == data["type"] for name, data in sent)
    types = [data["type"] for _, data in sent]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    # One block at a time: every start is followed by its own deltas and stop, indexes 0, 1, 2.
    open_index = None
    starts = []
    for _, data in sent:
        if data["type"] == "content_block_start":
            assert open_index is None
            open_index = data["index"]
            starts.append(open_index)
            if data["content_block"]["type"] == "tool_use":
                assert data["content_block"]["input"] == {}
        elif data["type"] == "content_block_delta":
            assert data["index"] == open_index
        elif data["type"] == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
    assert starts == [0, 1, 2]
    assert sent[0][1]["message"]["usage"]["output_tokens"] == 0
    assert sent[-2][1]["usage"] == {"output_tokens": 25, "input_tokens": 10, "cache_read_input_tokens": 30}

    client = anthropic_sdk(body)
    with client.messages.stream(**ASK) as stream:
        message = stream.get_final_message()
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Checking both."
    assert (message.content[1].id, message.content[1].name, message.content[1].input) == (
        "call_w",
        "weather",
        {"city": "Paris"},
    )
    assert (message.content[2].id, message.content[2].name, message.content[2].input) == (
        "call_t",
        "time",
        {"tz": "CET"},
    )
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 25
    assert message.usage.cache_read_input_tokens == 30


def test_parallel_tool_calls_that_all_say_index_0_stay_separate_calls(anthropic_sdk):
    """Some OpenAI-compatible servers send each parallel call whole under `index: 0`: a new id is a new
    call, not more arguments for the first (which would reach the client as `{...}{...}`)."""
    payload = (
        chunk({"role": "assistant", "content": ""})
        + chunk(call(0, "call_w", "weather", '{"city": "Paris"}'))
        + chunk(call(0, "call_t", "time", '{"tz": '))
        + chunk(call(0, arguments='"CET"}'))
        + chunk(finish="tool_calls")
        + frame("[DONE]")
    )
    events = parse_stream(oai.StreamParser(), payload)
    with anthropic_sdk(render_all(anth.StreamRenderer("m", "req_0"), events)).messages.stream(**ASK) as stream:
        message = stream.get_final_message()
    assert [(b.id, b.name, b.input) for b in message.content] == [
        ("call_w", "weather", {"city": "Paris"}),
        ("call_t", "time", {"tz": "CET"}),
    ]


def test_a_later_tool_call_goes_live_once_the_first_ends(anthropic_sdk):
    events = [
        Start("msg_up", "m", 5),
        ToolCallStart(0, "toolu_a", "a"),
        ToolCallStart(1, "toolu_b", "b"),
        ToolCallDelta(1, '{"x":'),
        ToolCallDelta(0, "{}"),
        ToolCallEnd(0),
        ToolCallDelta(1, " 1}"),
        ToolCallEnd(1),
        Finish("tool_use"),
    ]
    body = render_all(anth.StreamRenderer("m", "req_2"), events)
    deltas = [
        (d["index"], d["delta"]["partial_json"])
        for _, d in frames(body)
        if d["type"] == "content_block_delta"
    ]
    assert deltas == [(0, "{}"), (1, '{"x":'), (1, " 1}")]
    with anthropic_sdk(body).messages.stream(**ASK) as stream:
        message = stream.get_final_message()
    assert [b.input for b in message.content] == [{}, {"x": 1}]
    assert message.id == "msg_up"


def test_tool_call_without_arguments_is_an_empty_object_for_both_sdks(anthropic_sdk, openai_sdk):
    events = [Start(None, "m", 3), ToolCallStart(0, "", "ping"), ToolCallEnd(0), Finish("tool_use")]
    body = render_all(anth.StreamRenderer("m", "req_3"), events)
    assert b"input_json_delta" not in body  # the SDK keeps the start's {} when no fragment follows
    with anthropic_sdk(body).messages.stream(**ASK) as stream:
        block = stream.get_final_message().content[0]
    assert block.input == {} and block.id.startswith("toolu_")

    body = render_all(oai.StreamRenderer("m", "req_3"), events)
    with openai_sdk(body).chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "x"}]
    ) as s:
        tool_call = s.get_final_completion().choices[0].message.tool_calls[0]
    assert json.loads(tool_call.function.arguments) == {}
    assert tool_call.id.startswith("call_")


ANTHROPIC_THINKING = b"".join(
    frame(json.dumps(data), data["type"])
    for data in [
        {
            "type": "message_start",
            "message": {
                "id": "msg_up",
                "type": "message",
                "role": "assistant",
                "model": "claude-up",
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 21, "output_tokens": 1, "cache_creation_input_tokens": 7},
            },
        },
        {"type": "ping"},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Let me "},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "think."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "SIG/+=="},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "redacted_thinking", "data": "ENC"},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Done"}},
        {"type": "content_block_stop", "index": 2},
        {
            "type": "content_block_start",
            "index": 3,
            "content_block": {"type": "tool_use", "id": "toolu_x", "name": "run", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 3,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 3,
            "delta": {"type": "input_json_delta", "partial_json": '{"cmd"'},
        },
        {
            "type": "content_block_delta",
            "index": 3,
            "delta": {"type": "input_json_delta", "partial_json": ': "ls"}'},
        },
        {"type": "content_block_stop", "index": 3},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 50},
        },
        {"type": "message_stop"},
    ]
)


def test_anthropic_upstream_parses_to_canonical_events():
    parser = anth.StreamParser()
    events = parse_stream(parser, ANTHROPIC_THINKING)
    assert parser.finished
    assert events == [
        Start("msg_up", "claude-up", 21, None, 7),
        ThinkingDelta("Let me "),
        ThinkingDelta("think."),
        ThinkingSignature("SIG/+=="),
        RedactedThinking("ENC"),
        TextDelta("Done"),
        ToolCallStart(0, "toolu_x", "run"),
        ToolCallDelta(0, '{"cmd"'),
        ToolCallDelta(0, ': "ls"}'),
        ToolCallEnd(0),
        Usage(output_tokens=50),
        Finish("tool_use"),
    ]


def test_thinking_signature_survives_the_relay_untouched(anthropic_sdk):
    events = parse_stream(anth.StreamParser(), ANTHROPIC_THINKING)
    body = render_all(anth.StreamRenderer("claude-gw", "req_4"), events)
    sent = frames(body)
    thinking_frames = [d for _, d in sent if d.get("index") == 0]
    assert thinking_frames[-2]["delta"] == {"type": "signature_delta", "signature": "SIG/+=="}
    assert thinking_frames[-1]["type"] == "content_block_stop"
    assert sent[0][1]["message"]["usage"]["input_tokens"] == 21

    with anthropic_sdk(body).messages.stream(**ASK) as stream:
        message = stream.get_final_message()
    assert [b.type for b in message.content] == ["thinking", "redacted_thinking", "text", "tool_use"]
    assert message.content[0].thinking == "Let me think."
    assert message.content[0].signature == "SIG/+=="
    assert message.content[1].data == "ENC"
    assert message.content[3].input == {"cmd": "ls"}
    assert message.usage.cache_creation_input_tokens == 7
    assert message.usage.output_tokens == 50


def test_two_signed_thinking_blocks_stay_two_blocks(anthropic_sdk):
    events = [
        Start(None, "m", 1),
        ThinkingDelta("a"),
        ThinkingSignature("S1"),
        ThinkingDelta("b"),
        ThinkingSignature("S2"),
        TextDelta("t"),
        Finish("end_turn"),
    ]
    body = render_all(anth.StreamRenderer("m", "req_5"), events)
    with anthropic_sdk(body).messages.stream(**ASK) as stream:
        content = stream.get_final_message().content
    assert [(b.thinking, b.signature) for b in content[:2]] == [("a", "S1"), ("b", "S2")]


def test_anthropic_upstream_to_openai_client(openai_sdk):
    events = parse_stream(anth.StreamParser(), ANTHROPIC_THINKING)
    body = render_all(oai.StreamRenderer("gpt-gw", "req_6", include_usage=True), events)
    chunks = [d for _, d in frames(body)]
    assert body.endswith(b"data: [DONE]\n\n")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {c["id"] for c in chunks} == {"msg_up"} and {c["model"] for c in chunks} == {"gpt-gw"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 28
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c["choices"])
    assert reasoning == "Let me think."

    with openai_sdk(body).chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "x"}]
    ) as s:
        completion = s.get_final_completion()
    choice = completion.choices[0]
    assert choice.message.content == "Done"
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].id == "toolu_x"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"cmd": "ls"}
    assert completion.usage.completion_tokens == 50
    assert completion.usage.prompt_tokens == 28  # 21 uncached + 7 written to the cache


def test_openai_parser_holds_finish_until_usage_arrives():
    parser = oai.StreamParser()
    assert parser.feed(None, chunk({"role": "assistant"}).decode()[6:-2]) == [Start("chatcmpl-up", "gpt-up")]
    assert parser.feed(None, json.dumps({"choices": [{"delta": {"reasoning": "hm"}}]})) == [
        ThinkingDelta("hm")
    ]
    assert parser.feed(None, json.dumps({"choices": [{"delta": {}, "finish_reason": "length"}]})) == []
    assert not parser.finished
    usage = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}
    assert parser.feed(None, json.dumps(usage)) == [Usage(9, 4), Finish("max_tokens")]
    assert parser.finished
    assert parser.feed(None, "[DONE]") == []


def test_openai_parser_done_without_usage_still_finishes():
    parser = oai.StreamParser()
    parser.feed(None, json.dumps({"id": "c", "choices": [{"delta": {"content": "x"}}]}))
    assert parser.feed(None, json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}]})) == []
    assert parser.feed(None, "[DONE]") == [Finish("end_turn")]


def test_openai_parser_truncated_stream_is_not_finished():
    parser = oai.StreamParser()
    parser.feed(None, json.dumps({"id": "c", "choices": [{"delta": {"content": "x"}}]}))
    assert not parser.finished and parser.end() == []


def test_openai_parser_calls_stop_with_finish_reason_stop_still_mean_tool_use():
    parser = oai.StreamParser()
    events = parse_stream(parser, chunk(call(0, "c1", "f", "{}")) + chunk(finish="stop") + frame("[DONE]"))
    assert events[-2:] == [ToolCallEnd(0), Finish("tool_use")]


def test_openai_parser_error_frame_raises():
    parser = oai.StreamParser()
    with pytest.raises(UpstreamError) as caught:
        parser.feed(None, json.dumps({"error": {"message": "slow down", "type": "rate_limit_error"}}))
    assert caught.value.kind == "rate_limit" and caught.value.retryable


def test_anthropic_parser_overloaded_error_event_is_retryable():
    parser = anth.StreamParser()
    data = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    with pytest.raises(UpstreamError) as caught:
        parser.feed("error", data)
    assert (caught.value.kind, caught.value.retryable, caught.value.message) == (
        "overloaded",
        True,
        "Overloaded",
    )


@pytest.mark.parametrize("parser", [oai.StreamParser(), anth.StreamParser()])
def test_parsers_reject_garbage_as_bad_gateway(parser):
    with pytest.raises(UpstreamError) as caught:
        parser.feed("message_start", "{not json")
    assert caught.value.kind == "bad_gateway"


def test_anthropic_error_mid_stream_reaches_the_sdk(anthropic_sdk):
    renderer = anth.StreamRenderer("m", "req_7")
    body = renderer.render(Start(None, "m", 3)) + renderer.render(TextDelta("par"))
    body += renderer.error(GatewayError("overloaded", "upstream overloaded")) + renderer.close()
    assert body.endswith(b"\n\n") and b"event: error\n" in body
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        anthropic_sdk(body).messages.stream(**ASK) as stream,
    ):
        stream.get_final_message()
    assert caught.value.body["error"] == {"type": "overloaded_error", "message": "upstream overloaded"}


def test_openai_error_mid_stream_reaches_the_sdk(openai_sdk):
    renderer = oai.StreamRenderer("m", "req_8", include_usage=True)
    body = renderer.render(Start(None, "m", 3)) + renderer.render(TextDelta("par"))
    body += renderer.error(GatewayError("timeout", "upstream timed out")) + renderer.close()
    assert b"[DONE]" not in body
    stream = openai_sdk(body).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError, match="upstream timed out"):
        list(stream)


@pytest.mark.parametrize("renderer", [anth.StreamRenderer("m", "r"), oai.StreamRenderer("m", "r")])
def test_closing_an_unfinished_stream_reports_an_error_instead_of_faking_an_end(renderer):
    body = renderer.render(Start(None, "m", 1)) + renderer.render(TextDelta("half")) + renderer.close()
    assert b"the answer ended before it was complete" in body
    assert b"message_stop" not in body and b"[DONE]" not in body


def test_openai_stream_with_stop_and_no_usage_option(openai_sdk):
    events = [
        Start(None, None, 2),
        TextDelta("Hel"),
        TextDelta("lo"),
        Usage(output_tokens=2),
        Finish("stop_sequence", "##"),
    ]
    body = render_all(oai.StreamRenderer("gpt-gw", "req_abc"), events)
    chunks = [d for _, d in frames(body)]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)
    assert chunks[0]["id"] == "chatcmpl-abc"
    stream = openai_sdk(body).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "Hello"


def test_anthropic_stop_sequence_is_relayed(anthropic_sdk):
    events = [Start(None, None, 2), TextDelta("ab"), Usage(output_tokens=1), Finish("stop_sequence", "##")]
    body = render_all(anth.StreamRenderer("m", "req_9"), events)
    with anthropic_sdk(body).messages.stream(**ASK) as stream:
        message = stream.get_final_message()
    assert (message.stop_reason, message.stop_sequence, message.content[0].text) == (
        "stop_sequence",
        "##",
        "ab",
    )


def test_parsed_stream_and_non_streaming_answer_collect_the_same():
    streamed = collect(parse_stream(anth.StreamParser(), ANTHROPIC_THINKING))
    assert streamed.content[0].signature == "SIG/+=="
    assert streamed.usage == Usage(21, 50, None, 7)


def test_keep_alive_pings_are_ignored_by_both_sdks(anthropic_sdk, openai_sdk):
    renderer = anth.StreamRenderer("m", "req_p")
    body = renderer.render(Start(None, "m", 4)) + renderer.ping() + renderer.ping()
    body += b"".join(renderer.render(e) for e in [TextDelta("ok"), Finish("end_turn")]) + renderer.close()
    with anthropic_sdk(body).messages.stream(**ASK) as stream:
        assert stream.get_final_message().content[0].text == "ok"

    renderer = oai.StreamRenderer("m", "req_p")
    body = renderer.ping() + renderer.render(Start(None, "m", 4)) + renderer.ping()
    body += b"".join(renderer.render(e) for e in [TextDelta("ok"), Finish("end_turn")]) + renderer.close()
    stream = openai_sdk(body).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "ok"


def test_text_arriving_during_a_live_tool_call_follows_it_whole(anthropic_sdk):
    events = [
        Start("msg_up", "m", 5),
        ToolCallStart(0, "toolu_a", "a"),
        ToolCallDelta(0, '{"x":'),
        TextDelta("meanwhile"),
        ToolCallDelta(0, " 1}"),
        ToolCallEnd(0),
        TextDelta(", done"),
        Finish("tool_use"),
    ]
    body = render_all(anth.StreamRenderer("m", "req_3"), events)
    with anthropic_sdk(body).messages.stream(**ASK) as stream:
        message = stream.get_final_message()
    assert [b.type for b in message.content] == ["tool_use", "text"]
    assert message.content[0].input == {"x": 1}
    assert message.content[1].text == "meanwhile, done"


def test_text_held_during_a_tool_call_cut_short_still_arrives(anthropic_sdk):
    events = [Start("msg_up", "m", 5), ToolCallStart(0, "toolu_a", "a"), ToolCallDelta(0, "{}"), TextDelta("tail"), Finish("tool_use")]
    body = render_all(anth.StreamRenderer("m", "req_4"), events)
    with anthropic_sdk(body).messages.stream(**ASK) as stream:
        message = stream.get_final_message()
    assert [b.type for b in message.content] == ["tool_use", "text"] and message.content[1].text == "tail"
