"""Structured output and log probabilities survive translation, or are refused by name.

OpenAI `response_format` becomes Anthropic structured outputs (`output_config.format`) or an
instruction; Anthropic `output_config.format` becomes OpenAI `response_format`; what a target
cannot do (log probabilities from Anthropic, constrained decoding on the local worker) is a 400
naming the field, before anything is sent."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest
from pydantic import BaseModel

from fakes.upstream import FakeOpenAI, Reply
from mlxgw.worker.demo import build_demo_model
from tests.failover.rig import gateway_for, write_config
from tests.gateway.helpers import ANTHROPIC_HEADERS, OPENAI_HEADERS, post, start_gateway

USER = [{"role": "user", "content": "Weather in Paris?"}]
ANSWER = '{"city": "Paris", "temp_c": 21}'


class Weather(BaseModel):
    city: str
    temp_c: int


def walk_objects(schema):
    """Every object-typed node of a JSON schema."""
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            yield schema
        for value in schema.values():
            yield from walk_objects(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from walk_objects(value)


# ---- OpenAI client, Anthropic upstream -----------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_parse_through_anthropic_sends_structured_outputs(gateway, stream):
    gateway.anthropic_up.push(Reply(text=ANSWER))
    client = gateway.openai()
    if stream:
        async with client.chat.completions.stream(
            model="claude-sonnet-4-6", messages=USER, response_format=Weather
        ) as s:
            completion = await s.get_final_completion()
    else:
        completion = await client.chat.completions.parse(
            model="claude-sonnet-4-6", messages=USER, response_format=Weather
        )
    assert completion.choices[0].message.parsed == Weather(city="Paris", temp_c=21)
    sent = gateway.anthropic_up.requests[-1].json
    fmt = sent["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert set(fmt["schema"]["properties"]) == {"city", "temp_c"}
    assert fmt["schema"]["required"] == ["city", "temp_c"]
    assert "response_format" not in sent and "output_format" not in sent


async def test_an_openai_schema_is_adapted_to_what_anthropic_accepts(gateway):
    """Anthropic wants every object closed and refuses length and range keywords: objects get
    `additionalProperties: false`, the keywords move into the description (as Anthropic's SDK does)."""
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 2, "description": "who"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "address": {"type": "object", "properties": {"zip": {"type": "integer", "minimum": 0}}},
            "kind": {"oneOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["name"],
    }
    gateway.anthropic_up.push(Reply(text='{"name": "Ann"}'))
    r = await gateway.openai().chat.completions.create(
        model="claude-sonnet-4-6",
        messages=USER,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    assert r.choices[0].message.content == '{"name": "Ann"}'
    sent = gateway.anthropic_up.requests[-1].json["output_config"]["format"]["schema"]
    assert [o.get("additionalProperties") for o in walk_objects(sent)] == [False, False]
    name = sent["properties"]["name"]
    assert "minLength" not in name and "minLength: 2" in name["description"] and name["description"].startswith("who")
    assert "maxItems" not in sent["properties"]["tags"] and "maxItems: 3" in sent["properties"]["tags"]["description"]
    assert "minimum" not in sent["properties"]["address"]["properties"]["zip"]
    assert sent["properties"]["kind"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert sent["required"] == ["name"]
    assert schema["properties"]["name"]["minLength"] == 2  # the client's own object is left alone


async def test_openai_json_object_through_anthropic_asks_for_one_json_object(gateway):
    gateway.anthropic_up.push(Reply(text='{"ok": true}'))
    r = await gateway.openai().chat.completions.create(
        model="claude-sonnet-4-6",
        messages=[{"role": "system", "content": "Be brief."}, *USER],
        response_format={"type": "json_object"},
    )
    assert json.loads(r.choices[0].message.content) == {"ok": True}
    sent = gateway.anthropic_up.requests[-1].json
    system = " ".join(block["text"] for block in sent["system"])
    assert system.startswith("Be brief.") and "JSON object" in system
    assert "output_config" not in sent


async def test_text_response_format_changes_nothing(gateway):
    r = await gateway.openai().chat.completions.create(
        model="claude-sonnet-4-6", messages=USER, response_format={"type": "text"}
    )
    assert r.choices[0].message.content
    sent = gateway.anthropic_up.requests[-1].json
    assert "output_config" not in sent and "system" not in sent


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"logprobs": True}, "logprobs"), ({"logprobs": True, "top_logprobs": 3}, "logprobs"), ({"top_logprobs": 2}, "top_logprobs")],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_logprobs_through_anthropic_are_a_400_naming_the_field(gateway, fields, param, stream):
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.openai().chat.completions.create(
            model="claude-sonnet-4-6", messages=USER, stream=stream, **fields
        )
    error = caught.value.body
    assert caught.value.status_code == 400 and error["param"] == param, error
    assert "log probabilities" in error["message"]
    assert gateway.anthropic_up.requests == []


async def test_logprobs_false_is_not_a_request_for_them(gateway):
    r = await gateway.openai().chat.completions.create(model="claude-sonnet-4-6", messages=USER, logprobs=False)
    assert r.choices[0].message.content


async def test_logprobs_to_an_openai_upstream_are_passed_through(gateway):
    body = {"model": "gpt-4o", "messages": USER, "logprobs": True, "top_logprobs": 2}
    r = await post(gateway.url + "/v1/chat/completions", body, headers=OPENAI_HEADERS)
    assert r.status == 200, r.body
    assert gateway.openai_up.requests[-1].json == body


# ---- Anthropic client, OpenAI upstream -----------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_parse_through_openai_sends_response_format(gateway, stream):
    gateway.openai_up.push(Reply(text=ANSWER))
    client = gateway.anthropic()
    if stream:
        async with client.messages.stream(
            model="gpt-4o", max_tokens=256, messages=USER, output_format=Weather
        ) as s:
            message = await s.get_final_message()
    else:
        message = await client.messages.parse(model="gpt-4o", max_tokens=256, messages=USER, output_format=Weather)
    assert message.parsed_output == Weather(city="Paris", temp_c=21)
    sent = gateway.openai_up.requests[-1].json
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema"
    assert set(fmt["json_schema"]["schema"]["properties"]) == {"city", "temp_c"}
    assert fmt["json_schema"]["name"] == "Weather"
    assert fmt["json_schema"]["strict"] is True  # closed, every property required: OpenAI's strict rules hold
    assert "output_config" not in sent


async def test_an_anthropic_schema_with_optional_properties_is_not_sent_as_strict(gateway):
    """OpenAI's strict mode refuses a schema whose properties are not all required."""
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "note": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    body = {
        "model": "gpt-4o",
        "max_tokens": 64,
        "messages": USER,
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
    }
    r = await post(gateway.url + "/v1/messages", body, headers=ANTHROPIC_HEADERS)
    assert r.status == 200, r.body
    fmt = gateway.openai_up.requests[-1].json["response_format"]
    assert fmt == {"type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": False}}


async def test_the_deprecated_output_format_field_is_translated_too(gateway):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": False}
    body = {
        "model": "gpt-4o",
        "max_tokens": 64,
        "messages": USER,
        "output_format": {"type": "json_schema", "schema": schema},
    }
    r = await post(gateway.url + "/v1/messages", body, headers=ANTHROPIC_HEADERS)
    assert r.status == 200, r.body
    assert gateway.openai_up.requests[-1].json["response_format"]["json_schema"]["schema"] == schema


async def test_structured_outputs_to_an_anthropic_upstream_are_passed_through(gateway):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": False}
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": USER,
        "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": schema}},
    }
    r = await post(gateway.url + "/v1/messages", body, headers=ANTHROPIC_HEADERS)
    assert r.status == 200, r.body
    assert gateway.anthropic_up.requests[-1].json == body


# ---- the local worker: no log probabilities yet (its constrained decoding: tests/constrained) --------


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")


@pytest.fixture
async def local_url(demo_dir):
    write_config({}, [{"pattern": "demo", "backend": "local", "model": str(demo_dir)}])
    server, url = await start_gateway()
    try:
        yield url
    finally:
        await server.close()


async def worker_running(url: str) -> bool:
    async with aiohttp.ClientSession() as s, s.get(url + "/mlxgw/status") as r:
        return (await r.json())["local"]["running"]


async def test_the_local_worker_refuses_what_it_cannot_do_by_name(local_url):
    client = openai.AsyncOpenAI(base_url=local_url + "/v1", api_key="x", max_retries=0)
    async with client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="demo", messages=USER, max_tokens=8, logprobs=True)
    assert caught.value.body["param"] == "logprobs", caught.value.body
    assert "local" in caught.value.body["message"]
    assert not await worker_running(local_url)  # refused before the worker was even started


@pytest.mark.parametrize("fields", [{"logprobs": True, "top_logprobs": 2}], ids=["logprobs"])
async def test_what_the_local_model_cannot_do_goes_to_a_fallback_that_can(demo_dir, fields):
    async with FakeOpenAI(Reply(text=ANSWER)) as up:
        backends = {"oa": ("openai", up.url, {})}
        mappings = [{"pattern": "demo", "backend": "local", "model": str(demo_dir), "fallbacks": ["oa:gpt-4o"]}]
        async with gateway_for(backends, mappings) as url:
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
            async with client:
                r = await client.chat.completions.with_raw_response.create(model="demo", messages=USER, **fields)
            assert r.headers["x-mlxgw-backend"] == "oa:gpt-4o"
            assert r.parse().choices[0].message.content == ANSWER
            assert not await worker_running(url)
    sent = up.requests[0].json
    assert all(sent[k] == v for k, v in fields.items())
