"""What Codex 0.169 really sends (tests/agents/fixtures), served by translation: its first turn and
its turn after a tool call, and the tool set of a model Codex knows (a freeform apply_patch and a
tool search Codex runs itself)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakes.upstream import Reply, ToolCall
from tests.gateway.helpers import post
from tests.responses.helpers import CHAT, CLAUDE, MODELS

FIXTURES = Path(__file__).parents[1] / "agents" / "fixtures"


def recorded(name: str) -> tuple[dict, dict]:
    """The body and the headers Codex sent (its auth replaced by a client key)."""
    request = json.loads((FIXTURES / f"{name}.json").read_text())
    keep = ("originator", "session-id", "x-client-request-id", "accept", "user-agent")
    headers = {k: v for k, v in request["headers"].items() if k.lower() in keep}
    return request["body"], {**headers, "authorization": "Bearer client-key"}


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("turn", ["codex_turn1", "codex_turn2"])
async def test_codex_turns_are_served(gateway, kind, turn):
    body, headers = recorded(turn)
    r = await post(gateway.url + "/v1/responses", {**body, "model": MODELS[kind]}, headers=headers)
    assert r.status == 200, r.body
    assert r.headers["x-mlxgw-dropped-tools"] == "web_search"
    events = r.events()
    assert events[-1]["type"] == "response.completed"
    assert [e["type"] for e in events if e["type"] == "response.output_item.done"]
    up = (gateway.openai_up if kind == "openai" else gateway.anthropic_up).requests[-1].json
    names = [t["function"]["name"] if kind == "openai" else t["name"] for t in up["tools"]]
    assert "exec_command" in names and "multi_agent_v1__spawn_agent" in names and len(names) == 12
    # Codex's developer messages are the system prompt; store: false keeps nothing.
    system = up["messages"][0]["content"] if kind == "openai" else up["system"][0]["text"]
    assert "You are a coding agent running in the Codex CLI" in system
    assert (await post(gateway.url + "/v1/responses/input_tokens", {"model": MODELS[kind], "input": "x"})).status == 200


async def test_a_tool_search_codex_runs_itself_round_trips(gateway):
    body, headers = recorded("codex_known_model")
    gateway.anthropic_up.push(Reply(tool_calls=[ToolCall("tool_search", {"query": "github issues"}, id="toolu_ts")]), Reply(text="ok"))
    r = await post(gateway.url + "/v1/responses", {**body, "model": CLAUDE}, headers=headers)
    assert r.status == 200
    (call,) = [e["item"] for e in r.events() if e["type"] == "response.output_item.done"]
    assert (call["type"], call["call_id"], call["execution"], call["arguments"]) == (
        "tool_search_call", "toolu_ts", "client", {"query": "github issues"}
    )
    tools = {t["name"]: t for t in gateway.anthropic_up.requests[0].json["tools"]}
    assert "query" in tools["tool_search"]["input_schema"]["properties"]
    assert "input" in tools["apply_patch"]["input_schema"]["properties"]  # freeform: one string

    found = {"type": "namespace", "name": "mcp__github", "description": "GitHub",
             "tools": [{"type": "function", "name": "create_issue", "parameters": {"type": "object", "properties": {}}}]}
    follow_up = {**body, "model": CLAUDE, "input": [
        *body["input"], call, {"type": "tool_search_output", "call_id": "toolu_ts", "execution": "client", "tools": [found]},
    ]}
    assert (await post(gateway.url + "/v1/responses", follow_up, headers=headers)).status == 200
    sent = gateway.anthropic_up.requests[1].json
    assert "mcp__github__create_issue" in [t["name"] for t in sent["tools"]]  # the tools it found are callable now
    blocks = [b for m in sent["messages"] for b in m["content"] if isinstance(b, dict) and b["type"] in ("tool_use", "tool_result")]
    assert [(b["type"], b.get("name")) for b in blocks] == [("tool_use", "tool_search"), ("tool_result", None)]
    assert blocks[0]["input"] == {"query": "github issues"} and "create_issue" in json.dumps(blocks[1]["content"])


async def test_the_whole_answer_has_the_tool_search_call_too(gateway):
    body, headers = recorded("codex_known_model")
    gateway.openai_up.push(Reply(tool_calls=[ToolCall("tool_search", {"query": "x"}, id="call_ts")]))
    r = await post(gateway.url + "/v1/responses", {**body, "model": CHAT, "stream": False}, headers=headers)
    (call,) = r.json["output"]
    assert (call["type"], call["arguments"]) == ("tool_search_call", {"query": "x"})
