"""Namespace and custom (freeform) tools, which only Responses clients have, flattened for targets
without them (Chat Completions, Anthropic, the local model) and the target's calls mapped back to
the client's names by the step the dispatcher applies to every translated answer."""

from __future__ import annotations

import json
import re

import pytest

from mlxgw.backends.local.messages import to_hf_messages, to_hf_tools
from mlxgw.canonical import (
    ChatRequest,
    Finish,
    Message,
    TextPart,
    Tool,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
)
from mlxgw.wires import anthropic as anth
from mlxgw.wires import openai as oai
from mlxgw.wires import responses
from mlxgw.wires.tool_names import Restorer, ToolNames

SCHEMA = {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}
GRAMMAR = {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" LF'}
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hello\n*** End Patch"
TARGET_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def codex_like() -> ChatRequest:
    """What a Responses client such as Codex brings: a plain function, a namespace's function, a
    freeform tool, and a history with a call of each of the last two."""
    tools = [
        Tool("exec_command", "Run a command", SCHEMA),
        Tool("spawn_agent", "Spawn a sub-agent", {"type": "object", "properties": {"task": {"type": "string"}}}, namespace="multi_agent_v1"),
        Tool("apply_patch", "Edit files", kind="custom", format=GRAMMAR),
    ]
    messages = [
        Message("user", [TextPart("add a.txt, then get help")]),
        Message(
            "assistant",
            [
                ToolCallPart("call_1", "apply_patch", PATCH, kind="custom"),
                ToolCallPart("call_2", "spawn_agent", '{"task":"review"}', namespace="multi_agent_v1"),
            ],
        ),
        Message("user", [ToolResultPart("call_1", [TextPart("Done")]), ToolResultPart("call_2", [TextPart("agent 7")])]),
    ]
    return ChatRequest(model="m", messages=messages, tools=tools, protocol="responses", hosted_tools=["web_search"])


FLAT = ["exec_command", "multi_agent_v1__spawn_agent", "apply_patch"]


def test_a_chat_completions_target_gets_plain_functions_and_plain_history():
    body = oai.build_request(codex_like(), "gpt-4o")
    assert [t["function"]["name"] for t in body["tools"]] == FLAT
    assert all(t["type"] == "function" for t in body["tools"])
    patch = body["tools"][2]["function"]
    assert patch["description"] == "Edit files"
    assert patch["parameters"]["required"] == ["input"]
    assert patch["parameters"]["properties"]["input"]["type"] == "string"
    assert GRAMMAR["definition"] in patch["parameters"]["properties"]["input"]["description"]
    calls = body["messages"][1]["tool_calls"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("apply_patch", {"input": PATCH}),
        ("multi_agent_v1__spawn_agent", {"task": "review"}),
    ]
    assert [m["tool_call_id"] for m in body["messages"][2:]] == ["call_1", "call_2"]


def test_an_anthropic_target_gets_plain_tools_and_plain_history():
    body = anth.build_request(codex_like(), "claude")
    assert [t["name"] for t in body["tools"]] == FLAT
    assert body["tools"][2]["input_schema"]["properties"]["input"]["type"] == "string"
    uses = [b for b in body["messages"][1]["content"] if b["type"] == "tool_use"]
    assert [(b["name"], b["input"]) for b in uses] == [
        ("apply_patch", {"input": PATCH}),
        ("multi_agent_v1__spawn_agent", {"task": "review"}),
    ]


def test_the_local_model_gets_plain_tools_and_plain_history():
    request = codex_like()
    assert [t["function"]["name"] for t in to_hf_tools(request)] == FLAT
    calls = to_hf_messages(request)[1]["tool_calls"]
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("apply_patch", {"input": PATCH}),
        ("multi_agent_v1__spawn_agent", {"task": "review"}),
    ]


def test_a_responses_target_gets_the_tools_regrouped_as_the_client_sent_them():
    body = responses.build_request(codex_like(), "gpt-5")
    assert body["tools"] == [
        {"type": "function", "name": "exec_command", "parameters": SCHEMA, "strict": False, "description": "Run a command"},
        {
            "type": "namespace",
            "name": "multi_agent_v1",
            "description": "",
            "tools": [
                {
                    "type": "function",
                    "name": "spawn_agent",
                    "parameters": {"type": "object", "properties": {"task": {"type": "string"}}},
                    "strict": False,
                    "description": "Spawn a sub-agent",
                }
            ],
        },
        {"type": "custom", "name": "apply_patch", "description": "Edit files", "format": GRAMMAR},
    ]
    assert body["input"][1:] == [
        {"type": "custom_tool_call", "call_id": "call_1", "name": "apply_patch", "input": PATCH},
        {"type": "function_call", "call_id": "call_2", "name": "spawn_agent", "arguments": '{"task":"review"}', "namespace": "multi_agent_v1"},
        {"type": "custom_tool_call_output", "call_id": "call_1", "output": "Done"},
        {"type": "function_call_output", "call_id": "call_2", "output": "agent 7"},
    ]


def test_a_forced_tool_is_forced_under_its_target_name():
    request = codex_like()
    request.tool_choice = ToolChoice("tool", "spawn_agent")
    assert oai.build_request(request, "gpt-4o")["tool_choice"] == {"type": "function", "function": {"name": "multi_agent_v1__spawn_agent"}}
    assert anth.build_request(request, "claude")["tool_choice"] == {"type": "tool", "name": "multi_agent_v1__spawn_agent"}


def test_requests_without_namespaces_or_custom_tools_are_unchanged():
    request = ChatRequest(model="m", messages=[Message("user", [TextPart("hi")])], tools=[Tool("get.weather")])
    assert oai.build_request(request, "gpt-4o")["tools"][0]["function"]["name"] == "get.weather"
    assert Restorer(request.tools).names.flat == {}


@pytest.mark.parametrize(
    ("namespace", "name"),
    [("n" * 40, "m" * 40), ("my.tools", "run"), ("ns", "spawn agent!")],
    ids=["too-long", "dot-in-namespace", "odd-name"],
)
def test_names_that_break_the_targets_rule_are_cut_with_a_hash_and_still_map_back(namespace, name):
    tools = [Tool(name, namespace=namespace), Tool("other", namespace=namespace)]
    names = ToolNames(tools)
    flat = names.name_for(name, namespace)
    assert TARGET_NAME.fullmatch(flat)
    assert flat != names.name_for("other", namespace)
    assert names.name_for(name, namespace) == ToolNames(tools).name_for(name, namespace)  # stable
    restored = Restorer(tools).feed(ToolCallStart(0, "call_9", flat))
    assert restored == [ToolCallStart(0, "call_9", name, "function", namespace)]


def test_a_flattened_name_another_tool_already_has_gets_a_name_of_its_own():
    tools = [Tool("multi_agent_v1__spawn_agent"), Tool("spawn_agent", namespace="multi_agent_v1")]
    names = ToolNames(tools)
    flat = names.name_for("spawn_agent", "multi_agent_v1")
    assert flat != "multi_agent_v1__spawn_agent" and TARGET_NAME.fullmatch(flat)
    restorer = Restorer(tools)
    assert restorer.feed(ToolCallStart(0, "a", "multi_agent_v1__spawn_agent")) == [ToolCallStart(0, "a", "multi_agent_v1__spawn_agent")]
    assert restorer.feed(ToolCallStart(1, "b", flat)) == [ToolCallStart(1, "b", "spawn_agent", "function", "multi_agent_v1")]


def test_the_targets_calls_come_back_in_the_clients_names_and_a_custom_call_as_its_raw_input():
    restorer = Restorer(codex_like().tools)
    arguments = json.dumps({"input": PATCH})
    events = [
        ToolCallStart(0, "call_a", "multi_agent_v1__spawn_agent"),
        ToolCallDelta(0, '{"task":'),
        ToolCallDelta(0, '"x"}'),
        ToolCallEnd(0),
        ToolCallStart(1, "call_b", "apply_patch"),
        *[ToolCallDelta(1, arguments[i : i + 7]) for i in range(0, len(arguments), 7)],
        ToolCallEnd(1),
        ToolCallStart(2, "call_c", "exec_command"),
        ToolCallDelta(2, '{"cmd":"ls"}'),
        ToolCallEnd(2),
        Finish("tool_use"),
    ]
    out = [ev for event in events for ev in restorer.feed(event)]
    assert out == [
        ToolCallStart(0, "call_a", "spawn_agent", "function", "multi_agent_v1"),
        ToolCallDelta(0, '{"task":'),
        ToolCallDelta(0, '"x"}'),
        ToolCallEnd(0),
        ToolCallStart(1, "call_b", "apply_patch", "custom"),
        ToolCallDelta(1, PATCH),
        ToolCallEnd(1),
        ToolCallStart(2, "call_c", "exec_command"),
        ToolCallDelta(2, '{"cmd":"ls"}'),
        ToolCallEnd(2),
        Finish("tool_use"),
    ]


@pytest.mark.parametrize(
    ("arguments", "raw"),
    [('{"patch": "P"}', "P"), ("not json at all", "not json at all"), ("", "")],
    ids=["other-parameter-name", "not-json", "empty"],
)
def test_a_custom_call_whose_arguments_are_not_the_expected_object_keeps_what_the_model_wrote(arguments, raw):
    restorer = Restorer(codex_like().tools)
    out = restorer.feed(ToolCallStart(0, "c", "apply_patch")) + restorer.feed(ToolCallDelta(0, arguments))
    out += restorer.feed(Finish("tool_use"))  # the target never ended the call: released before the finish
    assert out == [ToolCallStart(0, "c", "apply_patch", "custom"), *([ToolCallDelta(0, raw)] if raw else []), Finish("tool_use")]


def test_calls_a_responses_target_made_natively_are_left_alone():
    restorer = Restorer(codex_like().tools)
    native = [ToolCallStart(0, "c", "spawn_agent", "function", "multi_agent_v1"), ToolCallStart(1, "d", "apply_patch", "custom")]
    assert [ev for event in native for ev in restorer.feed(event)] == native
    assert restorer.feed(ToolCallDelta(1, PATCH)) == [ToolCallDelta(1, PATCH)]
