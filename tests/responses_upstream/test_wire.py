"""The Responses wire's upstream face: canonical requests as Responses bodies, and a Responses
server's answers (whole, and streamed as the fake upstream streams them) back into canonical events."""

from __future__ import annotations

import json

import aiohttp
import pytest

from fakes.upstream import FakeResponses, Reply, Thinking, ToolCall, Usage
from mlxgw.canonical import (
    ChatRequest,
    EncryptedReasoning,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    collect,
)
from mlxgw.errors import UnreadableUpstream, Unsupported, UpstreamError
from mlxgw.wires import responses
from mlxgw.wires.sse import SSEDecoder


def request(*messages: Message, **kw) -> ChatRequest:
    return ChatRequest(model="m", messages=list(messages) or [Message("user", [TextPart("hi")])], **kw)


def test_a_plain_request():
    body = responses.build_request(
        request(system=[TextPart("Be terse."), TextPart("No emoji.")], temperature=0, top_p=0.5, user="u-1", prompt_cache_key="s-1"),
        "gpt-5",
    )
    assert body == {
        "model": "gpt-5",
        "instructions": "Be terse.\n\nNo emoji.",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "temperature": 0,
        "top_p": 0.5,
        "user": "u-1",
        "prompt_cache_key": "s-1",
        "store": False,
        "include": ["reasoning.encrypted_content"],
    }


def test_turns_become_input_items_in_order():
    body = responses.build_request(
        request(
            Message("user", [TextPart("look"), ImagePart("image/png", "AAAA"), ImagePart(url="https://x/cat.png")]),
            Message(
                "assistant",
                [
                    ThinkingPart("mine", encrypted="gAAA", origin="openai", item_id="rs_1"),
                    ThinkingPart("Claude's", signature="EqSig", origin="anthropic"),
                    ThinkingPart("a local model's"),
                    TextPart("Let me check."),
                    ToolCallPart("call_1", "get", '{"a":1}'),
                    ToolCallPart("call_2", "get", ""),
                ],
            ),
            Message(
                "user",
                [
                    ToolResultPart("call_1", [TextPart("one")]),
                    ToolResultPart("call_2", [TextPart("bad")], is_error=True),
                    TextPart("and now?"),
                ],
            ),
        ),
        "gpt-5",
    )
    assert body["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
                {"type": "input_image", "image_url": "https://x/cat.png", "detail": "auto"},
            ],
        },
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "mine"}], "id": "rs_1", "encrypted_content": "gAAA"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me check."}]},
        {"type": "function_call", "call_id": "call_1", "name": "get", "arguments": '{"a":1}'},
        {"type": "function_call", "call_id": "call_2", "name": "get", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "one"},
        {"type": "function_call_output", "call_id": "call_2", "output": "Error: bad"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "and now?"}]},
    ]


def test_a_tool_result_with_an_image_is_a_list_of_parts():
    body = responses.build_request(
        request(Message("user", [ToolResultPart("c", [TextPart("shot:"), ImagePart("image/png", "QUJD")])])), "gpt-5"
    )
    assert body["input"] == [
        {
            "type": "function_call_output",
            "call_id": "c",
            "output": [
                {"type": "input_text", "text": "shot:"},
                {"type": "input_image", "image_url": "data:image/png;base64,QUJD", "detail": "auto"},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("budget", "effort"),
    [(512, "minimal"), (1024, "low"), (4096, "medium"), (16384, "high"), (32768, "xhigh"), (100000, "xhigh")],
)
def test_a_thinking_budget_is_an_effort(budget, effort):
    assert responses.build_request(request(thinking_budget=budget), "gpt-5")["reasoning"] == {"effort": effort, "summary": "auto"}


def test_no_budget_no_reasoning_field():
    assert "reasoning" not in responses.build_request(request(), "gpt-5")


def test_output_limit_tools_choice_and_format():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False}
    body = responses.build_request(
        request(
            max_tokens=5000,
            tools=[Tool("get")],
            tool_choice=ToolChoice("any", disable_parallel=True),
            response_format=ResponseFormat("json_schema", "response_format", schema=schema, name="Answer"),
            stream=True,
        ),
        "gpt-5",
        ceiling=1000,
    )
    assert body["max_output_tokens"] == 1000
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False
    assert body["text"] == {"format": {"type": "json_schema", "name": "Answer", "schema": schema, "strict": True}}
    assert body["stream"] is True
    json_mode = responses.build_request(request(response_format=ResponseFormat("json_object", "response_format")), "gpt-5")
    assert json_mode["text"] == {"format": {"type": "json_object"}}
    assert responses.build_request(request(), "gpt-5", ceiling=64)["max_output_tokens"] == 64


@pytest.mark.parametrize(("field", "value"), [("stop", ["END"]), ("logprobs", True)])
def test_what_the_responses_api_cannot_do_is_refused_by_name(field, value):
    with pytest.raises(Unsupported) as refused:
        responses.build_request(request(**{field: value}), "gpt-5")
    assert refused.value.param == field


def test_passthrough_changes_only_the_model_and_a_limit_over_the_ceiling():
    raw = {"model": "mine", "input": "hi", "store": False, "future": {"x": [1, None]}, "max_output_tokens": 900}
    assert responses.passthrough_body(raw, "gpt-5") == {**raw, "model": "gpt-5"}
    assert responses.passthrough_body(raw, "gpt-5", ceiling=500)["max_output_tokens"] == 500
    assert responses.passthrough_body(raw, "gpt-5", ceiling=5000)["max_output_tokens"] == 900
    assert responses.passthrough_body({"model": "x", "input": "hi"}, "gpt-5", ceiling=64)["max_output_tokens"] == 64
    assert "max_output_tokens" not in responses.passthrough_body({"model": "x"}, "gpt-5")


# ---- answers: whole and streamed from the fake, read alike -------------------------------------

REPLIES = {
    "text": Reply(text="Hello there, friend", usage=Usage(input_tokens=50, output_tokens=4, cache_read_tokens=20)),
    "reasoning": Reply(thinking=Thinking("Step one. Step two.", "gAAAA-state"), text="Done."),
    "calls": Reply(
        tool_calls=[
            ToolCall("get_weather", {"city": "Paris"}, id="call_w"),
            ToolCall("apply_patch", "*** Begin Patch\n*** End Patch", id="call_p", kind="custom"),
            ToolCall("spawn_agent", {"task": "t"}, id="call_s", namespace="multi_agent_v1"),
        ]
    ),
    "incomplete": Reply(text="cut", finish="max_output_tokens"),
    "filtered": Reply(text="no", finish="content_filter"),
}


async def _answer(reply: Reply, stream: bool) -> list:
    async with FakeResponses(reply) as up, aiohttp.ClientSession() as session:
        body = {"model": "gpt-5", "input": "hi", "stream": stream}
        async with session.post(up.url + "/responses", json=body) as resp:
            raw = await resp.read()
    if not stream:
        return responses.events_from_response(json.loads(raw))
    parser = responses.StreamParser()
    events = []
    for frame in SSEDecoder().feed(raw):
        assert not parser.done
        events += parser.feed(frame.event, frame.data)
    assert parser.finished and parser.done
    return events + parser.end()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("case", list(REPLIES))
async def test_answers_read_the_same_whole_and_streamed(case, stream):
    answer = collect(await _answer(REPLIES[case], stream))
    expected = {
        "text": ([TextPart("Hello there, friend")], "end_turn"),
        "reasoning": ([ThinkingPart("Step one. Step two.", encrypted="gAAAA-state", origin="openai"), TextPart("Done.")], "end_turn"),
        "calls": (
            [
                ToolCallPart("call_w", "get_weather", '{"city": "Paris"}'),
                ToolCallPart("call_p", "apply_patch", "*** Begin Patch\n*** End Patch", kind="custom"),
                ToolCallPart("call_s", "spawn_agent", '{"task": "t"}', namespace="multi_agent_v1"),
            ],
            "tool_use",
        ),
        "incomplete": ([TextPart("cut")], "max_tokens"),
        "filtered": ([TextPart("no")], "refusal"),
    }[case]
    content = answer.content
    if case == "reasoning":
        assert content[0].item_id and content[0].item_id.startswith("rs_")
        content[0].item_id = None
    assert (content, answer.finish.reason) == expected
    assert answer.id.startswith("resp_") and answer.model == "gpt-5"
    if case == "text":
        assert (answer.usage.input_tokens, answer.usage.cache_read_tokens, answer.usage.output_tokens) == (50, 20, 4)


def test_a_stream_of_only_finished_items_is_read_whole():
    """Servers that send each item only when done (Codex accepts such streams) lose nothing."""
    parser = responses.StreamParser()
    frames = [
        {"type": "response.created", "response": {"id": "resp_1", "model": "m"}},
        {"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hm"}], "encrypted_content": "E"}},
        {"type": "response.output_item.done", "output_index": 1, "item": {"type": "message", "content": [{"type": "output_text", "text": "hi"}]}},
        {"type": "response.output_item.done", "output_index": 2, "item": {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}},
        {"type": "response.completed", "response": {"status": "completed", "usage": {"input_tokens": 3, "output_tokens": 2}}},
    ]
    events = [ev for f in frames for ev in parser.feed(f["type"], json.dumps(f))]
    answer = collect(events)
    assert answer.content == [
        ThinkingPart("hm", encrypted="E", origin="openai", item_id="rs_1"),
        TextPart("hi"),
        ToolCallPart("c1", "f", "{}"),
    ]
    assert answer.finish.reason == "tool_use" and parser.finished
    assert [type(ev) for ev in events].count(EncryptedReasoning) == 1


def test_errors_in_the_stream():
    with pytest.raises(UpstreamError) as failed:
        responses.StreamParser().feed(
            "response.failed",
            json.dumps({"type": "response.failed", "response": {"status": "failed", "error": {"code": "rate_limit_exceeded", "message": "slow down"}}}),
        )
    assert (failed.value.kind, failed.value.message, failed.value.retryable) == ("rate_limit", "slow down", True)
    with pytest.raises(UpstreamError) as error:
        responses.StreamParser().feed("error", json.dumps({"type": "error", "code": "server_error", "message": "boom"}))
    assert error.value.message == "boom" and error.value.retryable
    with pytest.raises(UnreadableUpstream):
        responses.StreamParser().feed("response.output_text.delta", json.dumps({"type": "response.output_text.delta", "delta": 5}))
    with pytest.raises(UnreadableUpstream):
        responses.StreamParser().feed("x", "{not json")


def test_whole_answers_that_failed_or_cannot_be_read():
    with pytest.raises(UpstreamError) as failed:
        responses.events_from_response({"status": "failed", "output": [], "error": {"code": "server_error", "message": "down"}})
    assert failed.value.message == "down"
    with pytest.raises(UnreadableUpstream):
        responses.events_from_response({"status": "completed"})
    with pytest.raises(UnreadableUpstream):
        responses.events_from_response({"status": "completed", "output": [{"type": "message", "content": "text"}]})


def test_a_context_length_error_has_the_openai_code():
    body = json.dumps({"error": {"message": "Your input exceeds the context window of this model.", "type": "invalid_request_error", "param": "input", "code": None}})
    err = responses.error_from_upstream(400, body.encode(), {})
    assert (err.status, err.code, err.retryable) == (400, "context_length_exceeded", False)
