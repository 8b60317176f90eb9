"""Codex's recorded tool sets through the gateway to targets without namespaces or freeform tools:
the fake Chat Completions and Anthropic upstreams record the flattened names, and their calls of
those names reach the Responses client (the official SDK) under the namespace, name and kind it gave."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakes.upstream import Reply, ToolCall
from tests.responses.helpers import MODELS, responses_gateway

FIXTURES = Path(__file__).parents[1] / "agents" / "fixtures"
TURN1 = json.loads((FIXTURES / "codex_turn1.json").read_text())["body"]
KNOWN = json.loads((FIXTURES / "codex_known_model.json").read_text())["body"]


def sdk_arguments(body: dict, model: str) -> dict:
    """A recorded body as the SDK's keyword arguments: what it has no argument for goes in extra_body."""
    kept = {k: v for k, v in body.items() if k not in ("stream", "client_metadata")}
    return {**kept, "model": model, "extra_body": {"client_metadata": body["client_metadata"]}}
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"


def _names(kind: str, body: dict) -> list[str]:
    return [t["function"]["name"] if kind == "openai" else t["name"] for t in body["tools"]]


def _parameters(kind: str, body: dict, name: str) -> dict:
    tool = next(t for t in body["tools"] if (t["function"]["name"] if kind == "openai" else t["name"]) == name)
    return tool["function"]["parameters"] if kind == "openai" else tool["input_schema"]


@pytest.fixture
async def gateway():
    async with responses_gateway() as gw:
        yield gw


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_codexs_namespace_tool_is_flattened_and_its_call_comes_back_namespaced(gateway, kind, stream):
    up = gateway.openai_up if kind == "openai" else gateway.anthropic_up
    up.push(Reply(tool_calls=[ToolCall("multi_agent_v1__spawn_agent", {"message": "review"}, id="call_s")]))
    client = gateway.openai()
    if stream:
        async with client.responses.stream(**sdk_arguments(TURN1, MODELS[kind])) as s:
            response = await s.get_final_response()
    else:
        response = await client.responses.create(**sdk_arguments(TURN1, MODELS[kind]))

    sent = up.requests[-1].json
    spaced = [t for t in TURN1["tools"] if t["type"] == "namespace"][0]
    expected = [t["name"] for t in TURN1["tools"] if t["type"] == "function"]
    expected[4:4] = [f"multi_agent_v1__{t['name']}" for t in spaced["tools"]]
    assert _names(kind, sent) == expected  # in the client's order; the hosted web_search left out
    (call,) = response.output
    assert (call.type, call.namespace, call.name, call.call_id) == ("function_call", "multi_agent_v1", "spawn_agent", "call_s")
    assert json.loads(call.arguments) == {"message": "review"}


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_codexs_freeform_apply_patch_is_a_one_string_function_and_its_call_comes_back_raw(gateway, kind):
    up = gateway.openai_up if kind == "openai" else gateway.anthropic_up
    up.push(Reply(tool_calls=[ToolCall("apply_patch", {"input": PATCH}, id="call_p")], arg_chunks=5))
    response = await gateway.openai().responses.create(**sdk_arguments(KNOWN, MODELS[kind]))

    parameters = _parameters(kind, up.requests[-1].json, "apply_patch")
    assert parameters["required"] == ["input"]
    grammar = next(t for t in KNOWN["tools"] if t.get("name") == "apply_patch")["format"]["definition"]
    assert grammar in parameters["properties"]["input"]["description"]
    (call,) = response.output
    assert (call.type, call.name, call.call_id, call.input) == ("custom_tool_call", "apply_patch", "call_p", PATCH)
