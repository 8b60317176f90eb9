"""Escalation on bad output: a local answer whose tool call does not parse, names a tool the request
did not offer or breaks the tool's schema moves on to the next backend under
fallback_on = ["bad_output"] (streamed or not, OpenAI and Anthropic clients alike), while nothing
has reached the client; once something has, the bad call is the protocol's error event. The
local models are copies of the demo model scripted to write those calls (tests/scripted_model.py);
the fallback is a fake OpenAI upstream."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import anthropic
import openai
import pytest

from fakes.upstream import FakeOpenAI
from tests.escalation.answers import BAD, GOOD, LOOKUP
from tests.failover.rig import gateway_for
from tests.foundation.helpers import cli

FALLBACK_TEXT = "Hello from fake-openai"
MSG = [{"role": "user", "content": "What is the weather in Paris?"}]
ANTHROPIC_TOOL = {
    "name": LOOKUP["function"]["name"],
    "description": LOOKUP["function"]["description"],
    "input_schema": LOOKUP["function"]["parameters"],
}
ROWS_WAIT = 50  # polls of the request log, 0.1 s apart


@contextlib.asynccontextmanager
async def escalating(scripted: dict[str, str], *, fallback_on: bool = True) -> AsyncIterator[tuple[str, FakeOpenAI]]:
    """A gateway mapping each scripted answer's name to its local model, with a fake OpenAI
    upstream as the fallback (`fallback_on = ["bad_output"]` unless told otherwise)."""
    async with FakeOpenAI() as fake:
        extra = {"fallback_on": ["bad_output"]} if fallback_on else {}
        mappings = [
            {"pattern": name, "backend": "local", "model": path, "fallbacks": ["fb:backup-model"], **extra}
            for name, path in scripted.items()
        ]
        async with gateway_for({"fb": ("openai", fake.url, {})}, mappings, {"request_log_days": 1}) as url:
            yield url, fake


def clients(url: str) -> tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic]:
    return (
        openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0),
        anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0),
    )


async def logged(n: int) -> list[dict]:
    """`mlxgw log --json`'s rows (newest first) once the daemon has written `n`."""
    import asyncio

    for _ in range(ROWS_WAIT):
        rows = [json.loads(line) for line in cli("log", "--json", "-n", "100").output.splitlines()]
        if len(rows) >= n:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {n} log rows, have {len(rows)}")


async def test_bad_tool_calls_are_answered_by_the_fallback_streamed_or_not_for_both_sdks(scripted, monkeypatch):
    async with escalating(scripted) as (url, fake):
        oa, an = clients(url)
        for name in BAD:
            whole = await oa.chat.completions.create(model=name, messages=MSG, tools=[LOOKUP])
            assert whole.choices[0].message.content == FALLBACK_TEXT, name
            assert whole.choices[0].message.tool_calls is None
            stream = await oa.chat.completions.create(model=name, messages=MSG, tools=[LOOKUP], stream=True)
            chunks = [c async for c in stream]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FALLBACK_TEXT, name
            assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)

            message = await an.messages.create(model=name, max_tokens=64, messages=MSG, tools=[ANTHROPIC_TOOL])
            assert [b.type for b in message.content] == ["text"] and message.content[0].text == FALLBACK_TEXT
            async with an.messages.stream(model=name, max_tokens=64, messages=MSG, tools=[ANTHROPIC_TOOL]) as s:
                final = await s.get_final_message()
            assert [b.type for b in final.content] == ["text"] and final.content[0].text == FALLBACK_TEXT
        assert len(fake.requests) == 4 * len(BAD)
        assert all(r.json["model"] == "backup-model" for r in fake.requests)
        rows = await logged(4 * len(BAD))
    for row in rows:
        assert row["status"] == 200 and row["backend"] == "fb" and row["error"] is None
        local, served = row["attempts"]
        assert (local["backend"], local["error"], local["tries"]) == ("local", "bad_output", 1)
        assert (served["backend"], served["error"]) == ("fb", None)
    monkeypatch.setenv("COLUMNS", "250")  # the table's cells whole
    assert "local(bad_output) → fb" not in cli("log").output.replace("(None)", "")
    assert "local(bad_output)" in cli("log").output


async def test_a_good_tool_call_is_served_locally_after_its_check(scripted):
    async with escalating(scripted) as (url, fake):
        oa, an = clients(url)
        whole = await oa.chat.completions.create(model="good", messages=MSG, tools=[LOOKUP])
        (tool_call,) = whole.choices[0].message.tool_calls
        assert whole.choices[0].message.content == "Checking."
        assert (tool_call.function.name, json.loads(tool_call.function.arguments)) == ("lookup", {"city": "Paris"})
        async with an.messages.stream(model="good", max_tokens=64, messages=MSG, tools=[ANTHROPIC_TOOL]) as s:
            final = await s.get_final_message()
        assert [b.type for b in final.content] == ["text", "tool_use"] and final.stop_reason == "tool_use"
        assert final.content[1].input == json.loads(GOOD)["arguments"]
        assert fake.requests == []


async def test_a_bad_tool_call_after_the_first_byte_is_the_protocols_error_event(scripted):
    """The first call of the block is good, so it goes out; the second names no offered tool."""
    async with escalating(scripted) as (url, fake):
        oa, an = clients(url)
        stream = await oa.chat.completions.create(model="good_then_bad", messages=MSG, tools=[LOOKUP], stream=True)
        seen = []
        with pytest.raises(openai.APIError, match="nosuch"):
            async for chunk in stream:
                seen.append(chunk)
        calls = [tc for c in seen if c.choices for tc in c.choices[0].delta.tool_calls or ()]
        assert [tc.function.name for tc in calls if tc.function.name] == ["lookup"]

        events = []
        with pytest.raises(anthropic.APIError, match="nosuch"):
            async with an.messages.stream(model="good_then_bad", max_tokens=64, messages=MSG, tools=[ANTHROPIC_TOOL]) as s:
                async for event in s:
                    events.append(event)
        starts = [e.content_block for e in events if e.type == "content_block_start"]
        assert [b.name for b in starts] == ["lookup"]

        responses = await oa.responses.create(model="good_then_bad", input="weather?", stream=True,
                                              tools=[{"type": "function", **LOOKUP["function"]}])
        items = []
        with pytest.raises(openai.APIError, match="nosuch"):
            async for event in responses:
                if event.type == "response.output_item.added":
                    items.append(event.item)
        assert [item.name for item in items if item.type == "function_call"] == ["lookup"]
        assert fake.requests == []
        rows = await logged(3)
    assert [row["error"] for row in rows] == ["bad_output"] * 3
    assert all(row["backend"] == "local" and row["attempts"][0]["error"] is None for row in rows)


async def test_without_bad_output_a_bad_call_goes_out_as_the_model_wrote_it(scripted):
    """No check without the opt-in: an unreadable call is the text the model wrote, a call to a tool
    not offered is relayed as a call (an agent tells the model so in its next turn)."""
    async with escalating(scripted, fallback_on=False) as (url, fake):
        oa, _ = clients(url)
        unparsed = await oa.chat.completions.create(model="unparsed", messages=MSG, tools=[LOOKUP])
        assert unparsed.choices[0].message.content == "<tool_call>{bad json</tool_call>"
        unknown = await oa.chat.completions.create(model="unknown_tool", messages=MSG, tools=[LOOKUP])
        assert [tc.function.name for tc in unknown.choices[0].message.tool_calls] == ["nosuch"]
        assert fake.requests == []


async def test_text_that_is_not_the_required_json_is_answered_by_the_fallback(scripted):
    """The constraint holds the local model to the schema, but an answer cut at its output limit is
    not the JSON asked for: the fallback answers it instead."""
    city = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    json_schema = {"type": "json_schema", "json_schema": {"name": "city", "schema": city}}
    async with escalating(scripted) as (url, fake):
        oa, _ = clients(url)
        whole = await oa.chat.completions.create(model="good", messages=MSG, response_format=json_schema, max_tokens=3)
        assert whole.choices[0].message.content == FALLBACK_TEXT
        stream = await oa.chat.completions.create(
            model="good", messages=MSG, response_format=json_schema, max_tokens=3, stream=True
        )
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == FALLBACK_TEXT
        assert len(fake.requests) == 2
        rows = await logged(2)
    assert all(row["attempts"][0]["error"] == "bad_output" and row["backend"] == "fb" for row in rows)
