"""Errors a Responses client sees: bad input as a 400 in OpenAI's shape naming the field, before any
upstream is asked; failures before the first byte as HTTP errors; a failure after it as
`response.failed` (what Codex reads) and an `error` event (what makes the SDK raise); keep-alives
that are real events (Codex's idle timer ignores SSE comments)."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from fakes.upstream import FakeOpenAI, Reply
from tests.failover.rig import gateway_for
from tests.gateway.helpers import post
from tests.responses.helpers import CHAT

OK = {"model": CHAT, "input": "hi"}
BAD = [
    ({"model": CHAT}, "input"),
    ({"model": CHAT, "input": 7}, "input"),
    ({**OK, "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}, "input[0].content[0].file_id"),
    ({**OK, "input": [{"role": "user", "content": [{"type": "input_file", "file_data": "x"}]}]}, "input[0].content[0].type"),
    ({**OK, "input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
    ({**OK, "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({**OK, "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
    ({**OK, "tools": {"type": "function"}}, "tools"),
    ({**OK, "tools": [{"type": "namespace", "name": "ns"}]}, "tools[0].tools"),
    ({**OK, "tools": [{"type": "function", "name": ""}]}, "tools[0].name"),
    ({**OK, "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({**OK, "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({**OK, "reasoning": {"effort": "huge"}}, "reasoning.effort"),
    ({**OK, "max_output_tokens": 0}, "max_output_tokens"),
    ({**OK, "temperature": "hot"}, "temperature"),
    ({**OK, "tool_choice": 5}, "tool_choice"),
    ({**OK, "store": "yes"}, "store"),
    ({**OK, "instructions": ["be brief"]}, "instructions"),
]


@pytest.mark.parametrize(("body", "param"), BAD, ids=[p for _, p in BAD])
async def test_bad_input_is_a_400_naming_the_field(gateway, body, param):
    r = await post(gateway.url + "/v1/responses", body)
    assert r.status == 400, r.body
    error = r.json["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert r.headers["x-request-id"].startswith("req_")
    assert gateway.openai_up.requests == []


async def test_the_sdk_raises_errors_before_the_first_byte(gateway):
    client = gateway.openai()
    with pytest.raises(openai.NotFoundError) as info:
        await client.responses.create(model="nobody-maps-this", input="hi", stream=True)
    assert info.value.body["code"] == "model_not_found"
    gateway.openai_up.push(Reply(status=400, error_message="Bad things in the prompt."))
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model=CHAT, input="hi", stream=True)
    assert "Bad things in the prompt." in info.value.message


async def test_a_failure_after_the_first_byte_is_response_failed(gateway):
    gateway.openai_up.push(Reply(text="one two three four five", error_event_after_chunks=3))
    r = await post(gateway.url + "/v1/responses", {**OK, "stream": True})
    assert r.status == 200
    assert [name for name, _ in r.frames()][-2:] == ["response.failed", "error"]
    events = r.events()
    failed = events[-2]
    assert failed["response"]["status"] == "failed" and failed["response"]["error"]["message"]
    assert failed["response"]["id"] == events[0]["response"]["id"]
    assert events[-1]["error"]["message"] == failed["response"]["error"]["message"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))

    gateway.openai_up.push(Reply(text="one two three four five", error_event_after_chunks=3))
    seen = []
    with pytest.raises(openai.APIError):
        async for event in await gateway.openai().responses.create(model=CHAT, input="hi", stream=True):
            seen.append(event.type)
    assert seen[0] == "response.created" and seen[-1] == "response.failed"


async def test_keepalives_are_response_in_progress_events():
    async with FakeOpenAI(Reply(text="late answer", delay_s=0.8)) as up:
        backends = {"oa": ("openai", up.url, {"first_byte_timeout_s": 5})}
        async with gateway_for(backends, [{"pattern": "gpt-*", "backend": "oa"}], {"keepalive_s": 0.2}) as url:
            r = await post(url + "/v1/responses", {**OK, "stream": True})
            async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
                up.push(Reply(text="late answer", delay_s=0.8))
                async with client.responses.stream(model=CHAT, input="hi") as stream:
                    final = await stream.get_final_response()
    assert b": keep-alive" not in r.body
    events = r.events()
    before = [e["type"] for e in events[: next(i for i, e in enumerate(events) if e["type"] == "response.output_item.added")]]
    assert before[0] == "response.created" and before.count("response.in_progress") >= 3
    assert events[-1]["type"] == "response.completed" and final.output_text == "late answer"
    assert len({e["response"]["id"] for e in events if "response" in e}) == 1


# What an upstream's failure before the first byte is to a Responses client: (reply, status, type).
UPSTREAM_FAILURES = {
    "400": (Reply(status=400), 400, "invalid_request_error"),
    "401": (Reply(status=401), 502, "api_error"),  # mlxgw's key was refused: not the client's problem
    "429": (Reply(status=429), 429, "rate_limit_error"),
    "500": (Reply(status=500), 502, "api_error"),
    "malformed": (Reply(malformed=True), 502, "api_error"),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("failure", list(UPSTREAM_FAILURES))
async def test_upstream_failures_in_openai_shape(gateway, failure, stream):
    reply, status, kind = UPSTREAM_FAILURES[failure]
    if failure == "malformed" and stream:
        reply = Reply(raw=[b"data: {not json\n\n"])
    gateway.openai_up.push(reply, reply)
    r = await post(gateway.url + "/v1/responses", {**OK, "stream": stream})
    assert (r.status, r.json["error"]["type"]) == (status, kind), r.body
    assert set(r.json["error"]) == {"message", "type", "param", "code"} and "Traceback" not in r.body.decode()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/responses", 405), ("PUT", "/v1/responses/resp_1", 405), ("GET", "/v1/responses/resp_1/nope", 404)],
)
async def test_other_paths_and_methods_answer_in_openai_shape(gateway, method, path, status):
    async with aiohttp.ClientSession() as session, session.request(method, gateway.url + path) as resp:
        body = await resp.json()
    assert resp.status == status and set(body["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("raw", [b"{", b"[1]", b""], ids=["truncated", "array", "empty"])
async def test_a_malformed_body_is_a_400(gateway, raw):
    r = await post(gateway.url + "/v1/responses", data=raw)
    assert r.status == 400 and r.json["error"]["type"] == "invalid_request_error"
