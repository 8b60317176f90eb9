"""State when the backend speaks Responses itself (passthrough): its answers and ids are the
upstream's, mlxgw keeps nothing, hosted tools are the upstream's to run (no dropped-tools header),
and a `previous_response_id` mlxgw does not know goes up untouched; one it stored is expanded, as
the upstream never saw it."""

from __future__ import annotations

import contextlib

import openai
import pytest

from fakes.upstream import FakeOpenAI, FakeResponses, Reply
from tests.foundation.helpers import cli
from tests.gateway.helpers import get, post, start_gateway

WEB_SEARCH = {"type": "web_search"}


@contextlib.asynccontextmanager
async def relay():
    """gpt-5* -> a Responses backend (passthrough), gpt-4* -> a Chat Completions one (translation)."""
    async with FakeResponses() as rs, FakeOpenAI() as oa:
        cli("creds", "set", "rs", "--type", "responses", "--base-url", rs.url, input="sk-rs\n")
        cli("creds", "set", "oa", "--type", "openai", "--base-url", oa.url, input="sk-oa\n")
        cli("map", "add", "gpt-5*", "rs")
        cli("map", "add", "gpt-4*", "oa")
        server, url = await start_gateway()
        try:
            yield url, rs, oa
        finally:
            await server.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_passthrough_keeps_nothing_and_relays_hosted_tools(stream):
    async with relay() as (url, rs, _):
        r = await post(url + "/v1/responses", {"model": "gpt-5", "input": "hi", "stream": stream, "tools": [WEB_SEARCH]})
        assert r.status == 200 and "x-mlxgw-dropped-tools" not in r.headers
        assert rs.requests[-1].json["tools"] == [WEB_SEARCH]
        response = r.events()[-1]["response"] if stream else r.json
        assert response["output"][0]["content"][0]["text"] == "Hello from fake-responses"
        assert (await get(url + f"/v1/responses/{response['id']}")).status == 404


async def test_an_upstream_previous_response_id_goes_up_untouched():
    async with relay() as (url, rs, _):
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
            r = await client.responses.create(model="gpt-5", input="again", previous_response_id="resp_upstream_1")
        assert r.output_text == "Hello from fake-responses"
        sent = rs.requests[-1].json
        assert sent["previous_response_id"] == "resp_upstream_1" and sent["input"] == "again"


async def test_a_stored_response_is_expanded_for_a_responses_backend():
    async with relay() as (url, rs, oa):
        oa.push(Reply(text="Noted: Ada."))
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
            first = await client.responses.create(model="gpt-4o", input="My name is Ada.")
            await client.responses.create(model="gpt-5", input="What is my name?", previous_response_id=first.id)
        sent = rs.requests[-1].json
        assert "previous_response_id" not in sent
        assert [(i["role"], i["content"][0]["text"]) for i in sent["input"]] == [
            ("user", "My name is Ada."), ("assistant", "Noted: Ada."), ("user", "What is my name?")
        ]
        assert all("id" not in item for item in sent["input"])  # mlxgw's own ids mean nothing upstream
