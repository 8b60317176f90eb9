"""The fake Responses upstream against the official SDK directly: what it streams is what OpenAI
streams, event for event, and the SDK accumulates it into the same response it answers whole."""

from __future__ import annotations

import json

import openai
import pytest

from fakes.upstream import FakeResponses, Reply, Thinking, ToolCall, Usage, fake_upstream


@pytest.fixture
async def up():
    async with FakeResponses(require_key="sk-fake") as fake:
        yield fake


def sdk(up: FakeResponses) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=up.url, api_key="sk-fake", max_retries=0, timeout=10)


async def test_the_event_sequence_of_a_reasoning_and_text_answer(up):
    up.push(Reply(thinking=Thinking("Hmm.", "enc"), text="Hi there"))
    async with sdk(up) as client:
        stream = await client.responses.create(model="gpt-5", input="hi", stream=True)
        events = [event async for event in stream]
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[7].item.encrypted_content == "enc"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_calls_of_every_kind_and_usage(up, stream):
    calls = [
        ToolCall("get", {"a": 1}, id="call_1"),
        ToolCall("apply_patch", "*** Begin Patch", id="call_2", kind="custom"),
        ToolCall("spawn_agent", {}, id="call_3", namespace="multi_agent_v1"),
    ]
    up.push(Reply(tool_calls=calls, usage=Usage(input_tokens=10, output_tokens=3, cache_read_tokens=4)))
    async with sdk(up) as client:
        if stream:
            async with client.responses.stream(model="gpt-5", input="go") as s:
                response = await s.get_final_response()
        else:
            response = await client.responses.create(model="gpt-5", input="go")
    assert [(o.type, o.call_id, o.name) for o in response.output] == [
        ("function_call", "call_1", "get"),
        ("custom_tool_call", "call_2", "apply_patch"),
        ("function_call", "call_3", "spawn_agent"),
    ]
    assert json.loads(response.output[0].arguments) == {"a": 1}
    assert response.output[1].input == "*** Begin Patch"
    assert response.output[2].namespace == "multi_agent_v1"
    usage = response.usage
    assert (usage.input_tokens, usage.input_tokens_details.cached_tokens, usage.output_tokens, usage.total_tokens) == (14, 4, 3, 17)


@pytest.mark.parametrize("reason", ["max_output_tokens", "content_filter"])
async def test_an_incomplete_answer(up, reason):
    up.push(Reply(text="cut", finish=reason))
    async with sdk(up) as client:
        response = await client.responses.create(model="gpt-5", input="go")
    assert (response.status, response.incomplete_details.reason) == ("incomplete", reason)


async def test_errors_in_openais_shape(up):
    up.push(Reply(prompt_too_long=(300000, 272000)), Reply(status=429, retry_after=2))
    async with sdk(up) as client:
        with pytest.raises(openai.BadRequestError) as too_long:
            await client.responses.create(model="gpt-5", input="x")
        with pytest.raises(openai.RateLimitError) as limited:
            await client.responses.create(model="gpt-5", input="x")
    assert (too_long.value.code, too_long.value.param) == ("context_length_exceeded", "input")
    assert limited.value.response.headers["retry-after"] == "2"


async def test_counting_models_and_recording(up):
    async with sdk(up) as client:
        count = await client.responses.input_tokens.count(model="gpt-5", input="count these words please")
        models = [m.id async for m in client.models.list()]
    assert count.input_tokens > 0 and models == ["gpt-5", "gpt-5-pro"]
    assert [r.path for r in up.requests] == ["/v1/responses/input_tokens", "/v1/models"]
    assert json.loads(up.requests[0].body) == {"model": "gpt-5", "input": "count these words please"}


async def test_only_the_responses_api_unless_asked_for_chat_too():
    async with fake_upstream("responses") as only, FakeResponses(chat=True) as both:
        for fake, status in ((only, 404), (both, 200)):
            async with openai.AsyncOpenAI(base_url=fake.url, api_key="k", max_retries=0, timeout=10) as client:
                try:
                    await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
                    seen = 200
                except openai.NotFoundError:
                    seen = 404
            assert seen == status
