"""The real Codex CLI (`codex exec`, pinned in tests/agents/tools.py) through mlxgw's Responses wire:
to an Anthropic upstream and to a Chat Completions upstream, translated both ways with a real tool
round trip (Codex runs `echo mlxgw-ok` and sends its output back), and to a Responses upstream in
passthrough. Its home is a temporary folder; it reaches nothing but 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from fakes.upstream import FakeAnthropic, FakeOpenAI, FakeResponses, Reply, ToolCall
from tests.agents import codex
from tests.agents.helpers import UPSTREAM_KEY, Tap, anthropic_blocks, arguments, gateway, text_of
from tests.failover.rig import gateway_for

ECHO = ToolCall("exec_command", {"cmd": "echo mlxgw-ok"})
FINAL = "The command printed mlxgw-ok."
# The model name decides Codex's tool set: for one it does not know (fallback metadata) a namespace
# tool (multi_agent_v1); for one it knows, the freeform apply_patch and tool_search instead.
MODELS = pytest.mark.parametrize("model", ["gpt-test", "gpt-5.5"])
SPECIAL_TOOL = {"gpt-test": "spawn_agent", "gpt-5.5": "apply_patch"}  # how the upstream's tool name ends


@MODELS
async def test_codex_runs_a_command_through_an_anthropic_upstream(agent_clis, tmp_path, model):
    async with FakeAnthropic(Reply(tool_calls=[ECHO]), Reply(text=FINAL), require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "anthropic", model, "claude-sonnet-4-6") as url:
            async with codex.sandbox(tmp_path, url + "/v1", model=model) as (home, work, egress):
                run = await codex.run_exec(agent_clis["codex"], home, "run echo mlxgw-ok", egress=egress, cwd=work)
    assert run.returncode == 0, run.explain()
    assert FINAL in run.stdout
    assert len(up.requests) == 2, [r.path for r in up.requests]
    first, second = (r.json for r in up.requests)
    assert first["model"] == "claude-sonnet-4-6"
    tools = {t["name"]: t for t in first["tools"]}
    assert "cmd" in tools["exec_command"]["input_schema"]["properties"]
    assert all("input_schema" in t for t in first["tools"]), "a hosted tool (web_search) went to Anthropic"
    assert any(name.endswith(SPECIAL_TOOL[model]) for name in tools), list(tools)
    (call,) = anthropic_blocks(second, "tool_use")
    assert (call["name"], call["input"]) == ("exec_command", {"cmd": "echo mlxgw-ok"})
    (result,) = anthropic_blocks(second, "tool_result")
    assert result["tool_use_id"] == call["id"]
    assert "mlxgw-ok" in text_of(result["content"])


@MODELS
async def test_codex_runs_a_command_through_a_chat_completions_upstream(agent_clis, tmp_path, model):
    async with FakeOpenAI(Reply(tool_calls=[ECHO]), Reply(text=FINAL), require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "openai", model, "gpt-4o") as url:
            async with codex.sandbox(tmp_path, url + "/v1", model=model) as (home, work, egress):
                run = await codex.run_exec(agent_clis["codex"], home, "run echo mlxgw-ok", egress=egress, cwd=work)
    assert run.returncode == 0, run.explain()
    assert FINAL in run.stdout
    assert [r.path for r in up.requests] == ["/v1/chat/completions"] * 2
    first, second = (r.json for r in up.requests)
    assert first["model"] == "gpt-4o"
    assert all(t["type"] == "function" for t in first["tools"]), "a hosted tool (web_search) went upstream"
    names = [t["function"]["name"] for t in first["tools"]]
    assert "exec_command" in names
    assert any(name.endswith(SPECIAL_TOOL[model]) for name in names), names
    (assistant,) = [m for m in second["messages"] if m.get("tool_calls")]
    (call,) = assistant["tool_calls"]
    assert call["function"]["name"] == "exec_command"
    assert arguments(call["function"]["arguments"]) == {"cmd": "echo mlxgw-ok"}
    (result,) = [m for m in second["messages"] if m["role"] == "tool"]
    assert result["tool_call_id"] == call["id"]
    assert "mlxgw-ok" in text_of(result["content"])


@pytest.mark.parametrize("kind, toml", [("responses", {}), ("openai", {"responses": "true"})],
                         ids=["responses-backend", "openai-backend-serving-responses"])
async def test_codex_to_a_responses_upstream_is_passed_through(agent_clis, tmp_path, kind, toml):
    async with FakeResponses(Reply(tool_calls=[ECHO]), Reply(text=FINAL), chat=kind == "openai",
                             require_key=UPSTREAM_KEY) as up:
        async with gateway(up, kind, "gpt-test", "gpt-5.5", **toml) as url, Tap(url) as tap:
            async with codex.sandbox(tmp_path, tap.url + "/v1") as (home, work, egress):
                run = await codex.run_exec(agent_clis["codex"], home, "run echo mlxgw-ok", egress=egress, cwd=work)
    assert run.returncode == 0, run.explain()
    assert FINAL in run.stdout
    assert [(r.method, r.path) for r in tap.requests] == [("POST", "/v1/responses")] * 2
    assert [r.path for r in up.requests] == ["/v1/responses"] * 2
    for sent, received in zip(tap.requests, up.requests, strict=True):
        codex_body = json.loads(sent.body)
        assert received.json == {**codex_body, "model": "gpt-5.5"}
        assert list(received.json) == list(codex_body), "the fields' order changed"
        assert received.bearer == UPSTREAM_KEY
    outputs = [item for item in up.requests[1].json["input"] if item["type"] == "function_call_output"]
    assert len(outputs) == 1 and "mlxgw-ok" in outputs[0]["output"]


async def test_codex_waits_on_keep_alives_while_the_upstream_is_silent(agent_clis, tmp_path):
    """Once keep-alives have committed the 200, Codex's idle timer runs, and it ignores SSE comments:
    only keep-alives that are events carry it through an upstream slower to begin than that timer (a
    long prefill, a slow cloud). Comments here fail with `idle timeout waiting for SSE`."""
    async with FakeAnthropic(Reply(text=FINAL, delay_s=2.0)) as up:
        backends = {"an": ("anthropic", up.url, {"first_byte_timeout_s": 10, "idle_timeout_s": 10})}
        mappings = [{"pattern": "gpt-test", "backend": "an", "model": "claude-sonnet-4-6"}]
        async with gateway_for(backends, mappings, server={"keepalive_s": 0.1}) as url:
            async with codex.sandbox(tmp_path, url + "/v1", idle_timeout_ms=700) as (home, work, egress):
                run = await codex.run_exec(agent_clis["codex"], home, "say hi", egress=egress, cwd=work)
    assert run.returncode == 0, run.explain()
    assert FINAL in run.stdout
    assert len(up.requests) == 1


async def test_codex_shows_the_upstream_error_before_the_answer(agent_clis, tmp_path):
    async with FakeAnthropic(Reply(status=400, error_message="messages: too many images"),
                             require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "anthropic", "gpt-test", "claude-sonnet-4-6") as url:
            async with codex.sandbox(tmp_path, url + "/v1") as (home, work, egress):
                run = await codex.run_exec(agent_clis["codex"], home, "say hi", egress=egress, cwd=work)
    assert run.returncode == 1, run.explain()
    assert "messages: too many images" in run.stderr, run.explain()
    assert len(up.requests) == 1


async def test_codex_shows_why_a_stream_broke_after_it_began(agent_clis, tmp_path):
    """A stream that ends without response.completed reads to Codex as "stream closed": the reason
    reaches the user only in a response.failed."""
    async with FakeAnthropic(Reply(text="a partial answer", error_event_after_chunks=4),
                             require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "anthropic", "gpt-test", "claude-sonnet-4-6") as url:
            async with codex.sandbox(tmp_path, url + "/v1") as (home, work, egress):
                run = await codex.run_exec(agent_clis["codex"], home, "say hi", egress=egress, cwd=work)
    assert run.returncode == 1, run.explain()
    assert "stream closed before response.completed" not in run.stderr, run.explain()
    assert "Overloaded" in run.stderr, run.explain()  # the upstream's own words
    assert len(up.requests) == 1
