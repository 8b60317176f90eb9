"""A Responses client to a backend that speaks Responses (a `type = "responses"` backend, or an
openai one with `responses = true`): its body reaches the upstream unchanged but for `model`, its
protocol headers with it and mlxgw's key instead of its own, and the upstream's bytes come back as
they were sent, streamed or whole."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from fakes.upstream import FakeResponses, Reply
from mlxgw import paths
from tests.foundation.helpers import cli
from tests.gateway.helpers import post, start_gateway

UPSTREAM_KEY = "sk-test-responses-passthrough-0005"
CLIENT_KEY = "client-key-that-stays-here"
CODEX_TURN2 = json.loads((Path(__file__).parents[1] / "agents" / "fixtures" / "codex_turn2.json").read_text())


def _event(name: str, **data) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


# An upstream's stream, byte for byte: odd spacing, a comment, an event the gateway does not know.
FRAMES = [
    _event("response.created", sequence_number=0, response={"id": "resp_up1", "object": "response", "status": "in_progress", "model": "gpt-5", "output": []}),
    b": upstream comment\n\n",
    _event("response.output_item.added", sequence_number=1, output_index=0, item={"id": "msg_1", "type": "message", "role": "assistant", "content": []}),
    _event("response.output_text.delta", sequence_number=2, item_id="msg_1", output_index=0, content_index=0, delta="Hé  llo"),
    _event("response.future_event", sequence_number=3, whatever=[1, None]),
    _event("response.output_item.done", sequence_number=4, output_index=0, item={"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hé  llo", "annotations": []}]}),
    _event("response.completed", sequence_number=5, response={"id": "resp_up1", "object": "response", "status": "completed", "model": "gpt-5", "output": [], "usage": {"input_tokens": 9, "output_tokens": 2, "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 11}}),
]
WHOLE = json.dumps({"id": "resp_up2", "object": "response", "status": "completed", "model": "gpt-5", "future_field": {"a": 1},
                    "output": [{"id": "msg_2", "type": "message", "role": "assistant", "status": "completed", "content": [{"type": "output_text", "text": "whole", "annotations": []}]}],
                    "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}}, indent=1).encode()


@pytest.fixture(params=["responses", "openai"], ids=["responses-backend", "openai-backend-with-responses"])
async def relay(request):
    """A gateway mapping `house-*` to the upstream's `gpt-5`, through a backend of either kind."""
    async with FakeResponses(require_key=UPSTREAM_KEY) as up:
        cli("creds", "set", "up", "--type", request.param, "--base-url", up.url, input=UPSTREAM_KEY + "\n")
        if request.param == "openai":
            path = paths.config_path()
            path.write_text(path.read_text().replace(f'base_url = "{up.url}"', f'base_url = "{up.url}"\nresponses = true'))
        cli("map", "add", "house-*", "up", "--model", "gpt-5")
        server, url = await start_gateway()
        try:
            yield url, up
        finally:
            await server.close()


HEADERS = {"authorization": f"Bearer {CLIENT_KEY}", "originator": "codex_exec", "session-id": "s-1", "x-client-request-id": "s-1"}


def _checked_upstream_request(up: FakeResponses, body: dict) -> None:
    rec = up.requests[-1]
    assert rec.path == "/v1/responses"
    assert rec.json == {**body, "model": "gpt-5"}
    assert list(rec.json) == list(body)  # even the order of the fields
    assert rec.bearer == UPSTREAM_KEY
    assert (rec.header("originator"), rec.header("session-id")) == ("codex_exec", "s-1")
    assert CLIENT_KEY not in json.dumps(rec.headers) and CLIENT_KEY.encode() not in rec.body


async def test_codexs_request_is_relayed_and_its_stream_comes_back_byte_for_byte(relay):
    url, up = relay
    up.push(Reply(raw=FRAMES))
    body = {**CODEX_TURN2["body"], "model": "house-codex"}
    r = await post(url + "/v1/responses", body, headers=HEADERS)
    assert r.status == 200, r.body
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.body == b"".join(FRAMES)
    _checked_upstream_request(up, body)
    # Hosted tools, namespaces and the reasoning state all went as Codex sent them.
    assert {"type": "web_search", "external_web_access": True} in up.requests[-1].json["tools"]


async def test_a_whole_answer_comes_back_as_the_upstream_wrote_it(relay):
    url, up = relay
    up.push(Reply(raw=WHOLE))
    body = {"model": "house-x", "input": [{"role": "user", "content": "hi"}], "store": True, "metadata": {"k": "v"}, "some_future_field": [1, 2.5, None]}
    r = await post(url + "/v1/responses", body, headers=HEADERS)
    assert r.status == 200, r.body
    assert r.body == WHOLE
    _checked_upstream_request(up, body)


async def test_the_official_sdk_through_the_relay(relay):
    url, up = relay
    up.push(Reply(text="from upstream"), Reply(text="streamed from upstream"))
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=10) as client:
        whole = await client.responses.create(model="house-sdk", input="hi", max_output_tokens=50)
        async with client.responses.stream(model="house-sdk", input="hi") as stream:
            final = await stream.get_final_response()
    assert whole.output_text == "from upstream" and whole.id.startswith("resp_")
    assert final.output_text == "streamed from upstream"
    assert [r.json["model"] for r in up.requests] == ["gpt-5", "gpt-5"]


async def test_a_token_count_is_relayed_to_the_counting_endpoint(relay):
    url, up = relay
    up.push(Reply(usage={"input_tokens": 77}), endpoint="count_tokens")
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=10) as client:
        count = await client.responses.input_tokens.count(model="house-count", input="count me", instructions="sys")
    assert count.input_tokens == 77
    rec = up.requests[-1]
    assert rec.path == "/v1/responses/input_tokens"
    assert rec.json == {"model": "gpt-5", "input": "count me", "instructions": "sys"}
    assert rec.bearer == UPSTREAM_KEY
