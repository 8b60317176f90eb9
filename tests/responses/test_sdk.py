"""The official openai SDK's Responses calls through the gateway, answered by translation from a
Chat Completions and an Anthropic upstream: whole and streamed, sync and async, the stream helper,
structured output with a Pydantic model."""

from __future__ import annotations

import asyncio

import openai
import pytest
from pydantic import BaseModel

from fakes.upstream import Reply, Usage
from tests.responses.helpers import CHAT, CLAUDE, MODELS, of_type, streamed

KINDS = ["openai", "anthropic"]


def upstream(gateway, kind: str):
    return gateway.openai_up if kind == "openai" else gateway.anthropic_up


@pytest.mark.parametrize("kind", KINDS)
async def test_create_whole_and_streamed(gateway, kind):
    up = upstream(gateway, kind)
    usage = Usage(input_tokens=30, output_tokens=7, cache_read_tokens=12)
    up.push(Reply(text="Hello from the upstream", usage=usage), Reply(text="Hello from the upstream", usage=usage))
    client = gateway.openai()

    whole = await client.responses.create(model=MODELS[kind], input="hi", instructions="Be brief.")
    assert whole.id.startswith("resp_") and whole.object == "response" and whole.status == "completed"
    assert whole.output_text == "Hello from the upstream"
    assert whole.model == MODELS[kind] and whole.instructions == "Be brief."
    (message,) = whole.output
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert (whole.usage.input_tokens, whole.usage.input_tokens_details.cached_tokens) == (42, 12)
    assert (whole.usage.output_tokens, whole.usage.total_tokens) == (7, 49)
    assert whole.usage.output_tokens_details.reasoning_tokens == 0

    events = await streamed(client, model=MODELS[kind], input="hi", instructions="Be brief.")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed"
    assert {e.response.id for e in of_type(events, "response.created") + of_type(events, "response.completed")} == {
        events[0].response.id
    }
    deltas = of_type(events, "response.output_text.delta")
    (added,) = of_type(events, "response.output_item.added")
    assert {(d.item_id, d.output_index, d.content_index) for d in deltas} == {(added.item.id, 0, 0)}
    assert "".join(d.delta for d in deltas) == "Hello from the upstream"
    (text_done,) = of_type(events, "response.output_text.done")
    assert text_done.text == "Hello from the upstream"
    final = events[-1].response
    assert final.output_text == "Hello from the upstream" and final.status == "completed"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (42, 7)
    assert up.requests[-1].json["stream"] is True


async def test_the_sync_client_whole_and_streamed(gateway):
    """The sync SDK, from a thread while the gateway runs on the loop."""
    gateway.openai_up.push(Reply(text="sync hello"), Reply(text="sync hello"))

    def both():
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key="client-key", max_retries=0, timeout=10) as client:
            whole = client.responses.create(model=CHAT, input="hi")
            events = list(client.responses.create(model=CHAT, input="hi", stream=True))
        return whole, events

    whole, events = await asyncio.to_thread(both)
    assert whole.output_text == "sync hello"
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "sync hello"


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_helper_final_response(gateway, kind):
    upstream(gateway, kind).push(Reply(text=["Streamed ", "in ", "three"]))
    async with gateway.openai().responses.stream(model=MODELS[kind], input="hi") as stream:
        snapshots = [e.snapshot async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert snapshots == ["Streamed ", "Streamed in ", "Streamed in three"]
    assert final.output_text == "Streamed in three" and final.status == "completed"


class Weather(BaseModel):
    city: str
    celsius: int


@pytest.mark.parametrize("stream", [False, True])
async def test_parse_with_a_pydantic_model(gateway, stream):
    gateway.openai_up.push(Reply(text='{"city": "Paris", "celsius": 21}'))
    client = gateway.openai()
    if stream:
        async with client.responses.stream(model=CHAT, input="weather?", text_format=Weather) as s:
            parsed = (await s.get_final_response()).output_parsed
    else:
        parsed = (await client.responses.parse(model=CHAT, input="weather?", text_format=Weather)).output_parsed
    assert parsed == Weather(city="Paris", celsius=21)
    sent = gateway.openai_up.requests[-1].json["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Weather"
    assert set(sent["json_schema"]["schema"]["properties"]) == {"city", "celsius"}


async def test_settings_are_translated_and_echoed(gateway):
    client = gateway.openai()
    r = await client.responses.create(
        model=CLAUDE,
        input=[
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Bonjour"}]},
            {"type": "message", "role": "user", "content": "encore"},
        ],
        instructions="Be brief.",
        max_output_tokens=300,
        temperature=0.5,
        top_p=0.9,
        metadata={"k": "v"},
        user="u-1",
        tool_choice="auto",
        parallel_tool_calls=False,
    )
    sent = gateway.anthropic_up.requests[-1].json
    assert [b["text"] for b in sent["system"]] == ["Be brief.", "Answer in French."]
    assert [(m["role"], m["content"][0]["text"]) for m in sent["messages"]] == [
        ("user", "hi"), ("assistant", "Bonjour"), ("user", "encore")
    ]
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (300, 0.5, 0.9)
    assert (r.max_output_tokens, r.temperature, r.top_p, r.metadata, r.user) == (300, 0.5, 0.9, {"k": "v"}, "u-1")
    assert r.parallel_tool_calls is False and r.tool_choice == "auto" and r.store is True
