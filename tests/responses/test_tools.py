"""Tools for a Responses client answered by translation: parallel function calls and their results
back, namespace tools (flattened for the target, the client's names in the answer), freeform custom
tools (Codex's apply_patch), hosted tools left out with a header."""

from __future__ import annotations

import json

import pytest

from fakes.upstream import Reply, ToolCall
from tests.gateway.helpers import post
from tests.responses.helpers import CHAT, MODELS, of_type, streamed

KINDS = ["openai", "anthropic"]
WEATHER = {"type": "function", "name": "weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\n"
APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Edit files with a patch.",
               "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/s"}}
CRM = {"type": "namespace", "name": "crm", "description": "The CRM.",
       "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}]}


def upstream(gateway, kind: str):
    return gateway.openai_up if kind == "openai" else gateway.anthropic_up


def sent_calls(kind: str, body: dict) -> list[tuple[str, str, dict]]:
    """(id, name, arguments) of the assistant tool calls an upstream was sent."""
    if kind == "openai":
        return [
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for m in body["messages"] for c in m.get("tool_calls") or []
        ]
    return [
        (b["id"], b["name"], b["input"])
        for m in body["messages"] if isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_use"
    ]


def sent_results(kind: str, body: dict) -> list[tuple[str, str]]:
    if kind == "openai":
        return [(m["tool_call_id"], m["content"] if isinstance(m["content"], str) else m["content"][0]["text"])
                for m in body["messages"] if m["role"] == "tool"]
    return [
        (b["tool_use_id"], b["content"][0]["text"] if isinstance(b["content"], list) else b["content"])
        for m in body["messages"] if isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_result"
    ]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_parallel_function_call_round_trip(gateway, kind):
    up = upstream(gateway, kind)
    calls = [ToolCall("weather", {"city": "Paris"}, id="call_p"), ToolCall("weather", {"city": "Oslo"}, id="call_o")]
    up.push(Reply(tool_calls=calls, interleave=True), Reply(text="Sunny and snowy."))
    client = gateway.openai()

    events = await streamed(client, model=MODELS[kind], input="Weather in Paris and Oslo?", tools=[WEATHER])
    final = events[-1].response
    assert events[-1].type == "response.completed"
    items = [i for i in final.output if i.type == "function_call"]
    assert [(i.call_id, i.name, json.loads(i.arguments)) for i in items] == [
        ("call_p", "weather", {"city": "Paris"}), ("call_o", "weather", {"city": "Oslo"})
    ]
    assert all(i.id.startswith("fc_") and i.status == "completed" for i in items)
    for item in items:  # each call's deltas add up to its arguments, under its own item id and index
        index = final.output.index(item)
        deltas = [e.delta for e in of_type(events, "response.function_call_arguments.delta") if e.item_id == item.id]
        assert "".join(deltas) == item.arguments
        assert {e.output_index for e in events if getattr(e, "item_id", None) == item.id} == {index}
    tools = up.requests[0].json["tools"]
    assert [t["function"]["name"] if kind == "openai" else t["name"] for t in tools] == ["weather"]

    second = await client.responses.create(
        model=MODELS[kind],
        input=[
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            *[i.model_dump(exclude_none=True) for i in items],
            {"type": "function_call_output", "call_id": "call_p", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_o", "output": "snow"},
        ],
        tools=[WEATHER],
    )
    assert second.output_text == "Sunny and snowy."
    body = up.requests[1].json
    assert sent_calls(kind, body) == [("call_p", "weather", {"city": "Paris"}), ("call_o", "weather", {"city": "Oslo"})]
    assert sent_results(kind, body) == [("call_p", "sunny"), ("call_o", "snow")]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_namespace_tool_call_in_the_clients_names(gateway, kind):
    up = upstream(gateway, kind)
    up.push(Reply(tool_calls=[ToolCall("crm__lookup", {"id": "42"}, id="call_crm")]), Reply(text="Found."))
    client = gateway.openai()

    whole = await client.responses.create(model=MODELS[kind], input="Find 42", tools=[CRM])
    (call,) = whole.output
    assert (call.type, call.namespace, call.name, json.loads(call.arguments)) == ("function_call", "crm", "lookup", {"id": "42"})
    tools = up.requests[0].json["tools"]
    assert [t["function"]["name"] if kind == "openai" else t["name"] for t in tools] == ["crm__lookup"]

    await client.responses.create(
        model=MODELS[kind],
        input=[call.model_dump(exclude_none=True), {"type": "function_call_output", "call_id": "call_crm", "output": "Ada"}],
        tools=[CRM],
    )
    assert sent_calls(kind, up.requests[1].json) == [("call_crm", "crm__lookup", {"id": "42"})]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_custom_tool_call_like_codex_apply_patch(gateway, kind):
    up = upstream(gateway, kind)
    up.push(Reply(tool_calls=[ToolCall("apply_patch", {"input": PATCH}, id="call_patch")]), Reply(text="Patched."))
    client = gateway.openai()

    events = await streamed(client, model=MODELS[kind], input="Add hello.txt", tools=[APPLY_PATCH])
    (call,) = events[-1].response.output
    assert (call.type, call.name, call.call_id, call.input) == ("custom_tool_call", "apply_patch", "call_patch", PATCH)
    assert call.id.startswith("ctc_")
    assert "".join(e.delta for e in of_type(events, "response.custom_tool_call_input.delta")) == PATCH
    (done,) = of_type(events, "response.custom_tool_call_input.done")
    assert done.input == PATCH and done.item_id == call.id

    await client.responses.create(
        model=MODELS[kind],
        input=[call.model_dump(exclude_none=True), {"type": "custom_tool_call_output", "call_id": "call_patch", "output": "Done!"}],
        tools=[APPLY_PATCH],
    )
    body = up.requests[1].json
    assert sent_calls(kind, body) == [("call_patch", "apply_patch", {"input": PATCH})]
    assert sent_results(kind, body) == [("call_patch", "Done!")]


@pytest.mark.parametrize("stream", [False, True])
async def test_hosted_tools_are_left_out_with_a_header(gateway, stream):
    body = {"model": CHAT, "input": "hi", "stream": stream,
            "tools": [WEATHER, {"type": "web_search", "external_web_access": True}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]}
    r = await post(gateway.url + "/v1/responses", body, headers={"authorization": "Bearer client-key"})
    assert r.status == 200
    assert r.headers["x-mlxgw-dropped-tools"] == "web_search, file_search"
    assert [t["function"]["name"] for t in gateway.openai_up.requests[-1].json["tools"]] == ["weather"]
    # The Response still repeats the tools the client sent.
    final = r.events()[-1]["response"] if stream else r.json
    assert [t["type"] for t in final["tools"]] == ["function", "web_search", "file_search"]


async def test_no_header_without_hosted_tools(gateway):
    r = await post(gateway.url + "/v1/responses", {"model": CHAT, "input": "hi", "tools": [WEATHER]})
    assert r.status == 200 and "x-mlxgw-dropped-tools" not in r.headers
