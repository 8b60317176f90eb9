"""Constrained decoding on the local demo model, through the gateway with the official SDKs.

The demo model has random weights: an answer that validates against its schema is the grammar at
work, not the model. Schemas are bounded (short strings, ranged integers, enums) so that greedy
decoding of gibberish still closes them in a few dozen tokens.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import jsonschema
import openai

from tests.local.helpers import PROMPT, clients, local_gateway, status

WAIT_S = 60

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "celsius": {"type": "integer", "minimum": -40, "maximum": 50},
        "sunny": {"type": "boolean"},
        "sky": {"enum": ["clear", "cloudy", "rain"]},
    },
    "required": ["city", "celsius", "sunny", "sky"],
    "additionalProperties": False,
}
FORECAST = {
    "type": "object",
    "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 7}, "units": {"enum": ["metric", "imperial"]}},
    "required": ["days", "units"],
    "additionalProperties": False,
}
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_forecast", "description": "Forecast", "parameters": FORECAST}},
]
ANTHROPIC_TOOLS = [
    {"name": t["function"]["name"], "description": t["function"]["description"], "input_schema": t["function"]["parameters"]}
    for t in OPENAI_TOOLS
]
SCHEMAS = {"get_weather": WEATHER, "get_forecast": FORECAST}
CHAT_FORMAT = {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER, "strict": True}}


async def test_chat_completions_json_schema_and_json_object(demo_dir):
    async with local_gateway(demo_dir) as url:
        oa, _ = clients(url)
        async with asyncio.timeout(WAIT_S):
            r = await oa.chat.completions.create(
                model="demo", messages=PROMPT, max_tokens=96, temperature=0, response_format=CHAT_FORMAT
            )
            jsonschema.validate(json.loads(r.choices[0].message.content), WEATHER)
            # The schema complete, the answer ends there: not at max_tokens.
            assert r.choices[0].finish_reason == "stop" and r.usage.completion_tokens < 96

            stream = await oa.chat.completions.create(
                model="demo", messages=PROMPT, max_tokens=96, temperature=0.8, response_format=CHAT_FORMAT, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            jsonschema.validate(json.loads(text), WEATHER)

            # Any object: strings are unbounded, so sampled gibberish closes them only by chance; this
            # seed (a seeded request runs alone, reproducibly) closes one within 70 tokens.
            r = await oa.chat.completions.create(
                model="demo", messages=PROMPT, max_tokens=300, temperature=1.0, seed=21, response_format={"type": "json_object"}
            )
            answer = json.loads(r.choices[0].message.content)
            assert isinstance(answer, dict) and answer, answer


async def test_responses_text_format_and_anthropic_structured_output(demo_dir):
    async with local_gateway(demo_dir) as url:
        oa, an = clients(url)
        async with asyncio.timeout(WAIT_S):
            r = await oa.responses.create(
                model="demo",
                input="Weather in Paris?",
                max_output_tokens=96,
                temperature=0,
                text={"format": {"type": "json_schema", "name": "weather", "schema": WEATHER, "strict": True}},
            )
            jsonschema.validate(json.loads(r.output_text), WEATHER)

            m = await an.messages.create(
                model="demo",
                max_tokens=96,
                messages=PROMPT,
                extra_body={"temperature": 0, "output_config": {"format": {"type": "json_schema", "schema": FORECAST}}},
            )
            jsonschema.validate(json.loads(m.content[0].text), FORECAST)
            assert m.stop_reason == "end_turn"


def assert_valid_call(name: str, arguments: dict, expected: str | None = None) -> None:
    assert name in SCHEMAS and (expected is None or name == expected), name
    jsonschema.validate(arguments, SCHEMAS[name])


async def test_forced_tool_choices_return_schema_valid_calls(demo_dir):
    async with local_gateway(demo_dir) as url:
        oa, an = clients(url)
        async with asyncio.timeout(WAIT_S):
            named = {"type": "function", "function": {"name": "get_forecast"}}
            r = await oa.chat.completions.create(
                model="demo", messages=PROMPT, max_tokens=96, temperature=0, tools=OPENAI_TOOLS, tool_choice=named
            )
            (call,) = r.choices[0].message.tool_calls
            assert_valid_call(call.function.name, json.loads(call.function.arguments), "get_forecast")
            assert r.choices[0].finish_reason == "tool_calls"

            stream = await oa.chat.completions.create(
                model="demo", messages=PROMPT, max_tokens=96, temperature=0.8, tools=OPENAI_TOOLS, tool_choice="required", stream=True
            )
            names, arguments = [], ""
            async for chunk in stream:
                for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                    if delta.function.name:
                        names.append(delta.function.name)
                    arguments += delta.function.arguments or ""
            assert len(names) == 1
            assert_valid_call(names[0], json.loads(arguments))

            m = await an.messages.create(
                model="demo",
                max_tokens=96,
                messages=PROMPT,
                tools=ANTHROPIC_TOOLS,
                tool_choice={"type": "tool", "name": "get_weather"},
                extra_body={"temperature": 0},
            )
            (use,) = [b for b in m.content if b.type == "tool_use"]
            assert_valid_call(use.name, use.input, "get_weather")
            assert m.stop_reason == "tool_use"

            async with an.messages.stream(
                model="demo", max_tokens=96, messages=PROMPT, tools=ANTHROPIC_TOOLS, tool_choice={"type": "any"}
            ) as s:
                final = await s.get_final_message()
            (use,) = [b for b in final.content if b.type == "tool_use"]
            assert_valid_call(use.name, use.input)


async def test_a_constrained_and_a_free_request_share_one_batch(demo_dir):
    async with local_gateway(demo_dir) as url:
        oa, _ = clients(url)
        async with asyncio.timeout(WAIT_S):
            free = await oa.chat.completions.create(
                model="demo", messages=PROMPT, max_tokens=4000, temperature=0, stream=True
            )
            text = ""
            async for chunk in free:
                text += chunk.choices[0].delta.content or "" if chunk.choices else ""
                if text:
                    break
            r = await oa.chat.completions.create(
                model="demo", messages=PROMPT, max_tokens=96, temperature=0, response_format=CHAT_FORMAT
            )
            jsonschema.validate(json.loads(r.choices[0].message.content), WEATHER)
            assert (await status(url))["batch"]["max_batch_size"] == 2
            async for chunk in free:
                text += chunk.choices[0].delta.content or "" if chunk.choices else ""
                if len(text) > 200:
                    break
            await free.close()
        # The free one was not held to the other's grammar: gibberish, not a JSON object.
        assert not text.lstrip().startswith("{") and len(text) > 200


async def test_a_schema_the_grammar_cannot_take_is_a_400_in_each_protocol(demo_dir):
    bad = {"type": "object", "properties": {"a": {"type": 5}}}
    async with local_gateway(demo_dir) as url:
        oa, _ = clients(url)
        async with asyncio.timeout(WAIT_S):
            try:
                await oa.chat.completions.create(
                    model="demo",
                    messages=PROMPT,
                    max_tokens=8,
                    response_format={"type": "json_schema", "json_schema": {"name": "bad", "schema": bad}},
                )
            except openai.BadRequestError as e:
                assert "schema" in e.body["message"], e.body
            else:
                raise AssertionError("an invalid schema was accepted")
            body = {
                "model": "demo",
                "max_tokens": 8,
                "messages": PROMPT,
                "tools": [{"name": "t", "input_schema": bad}],
                "tool_choice": {"type": "tool", "name": "t"},
            }
            async with aiohttp.ClientSession() as s, s.post(url + "/v1/messages", json=body, headers={"x-api-key": "x"}) as r:
                error = await r.json()
            assert r.status == 400 and error["error"]["type"] == "invalid_request_error", error
            assert "schema" in error["error"]["message"]
