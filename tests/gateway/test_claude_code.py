"""A request shaped like current Claude Code's is accepted and reaches either upstream kind in a form
that upstream takes."""

from __future__ import annotations

import json

import pytest

from fakes.upstream import Reply, ToolCall
from tests.gateway.claude_code import ANTHROPIC_ONLY, HEADERS, TOOL_NAMES, claude_code_request
from tests.gateway.helpers import post


def _walk_keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _walk_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _walk_keys(v)}
    return set()


@pytest.mark.parametrize("up_kind", ["openai", "anthropic"])
async def test_claude_code_request_is_accepted_and_streams(gateway, up_kind):
    model = "gpt-4o" if up_kind == "openai" else "claude-sonnet-4-6"
    up = gateway.openai_up if up_kind == "openai" else gateway.anthropic_up
    up.push(Reply(text="Here are the files:", tool_calls=[ToolCall("LS", {"arg": "."})]))
    r = await post(gateway.url + "/v1/messages?beta=true", claude_code_request(model), headers=HEADERS)
    assert r.status == 200, r.body
    events = r.events()
    names = [e["type"] for e in events]
    assert names[0] == "message_start"
    assert events[0]["message"]["usage"]["input_tokens"] > 0
    assert names[-2:] == ["message_delta", "message_stop"]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use"]
    tool_json = "".join(
        e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta" and e["index"] == 1
    )
    assert json.loads(tool_json) == {"arg": "."}

    sent = up.requests[-1]
    body = sent.json
    assert body["model"] == model
    assert body["stream"] is True
    if up_kind == "openai":
        msgs = body["messages"]
        assert msgs[0]["role"] == "system"
        assert "You are Claude Code" in msgs[0]["content"]
        # Its system turn after the user's stays there: the head is the same on every turn.
        assert [m["role"] for m in msgs[1:]] == ["user", "system"]
        assert msgs[2]["content"] == "The user switched to plan mode."
        assert len(body["tools"]) == len(TOOL_NAMES)
        assert all(t["type"] == "function" and "parameters" in t["function"] for t in body["tools"])
        assert [t["function"]["name"] for t in body["tools"]] == TOOL_NAMES
        assert not (_walk_keys(body) & ANTHROPIC_ONLY), _walk_keys(body) & ANTHROPIC_ONLY
        assert "max_tokens" in body or "max_completion_tokens" in body
        assert body["stream_options"] == {"include_usage": True}
        assert sent.header("anthropic-beta") is None and sent.header("x-api-key") is None
    else:
        # Anthropic takes everything Claude Code sends, except a system turn inside `messages`.
        assert all(m["role"] in ("user", "assistant") for m in body["messages"]), body["messages"]
        system_text = " ".join(b["text"] for b in body["system"])
        assert "You are Claude Code" in system_text and "plan mode" in system_text
        assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
        for field in ("thinking", "context_management", "output_config", "metadata", "tools", "max_tokens"):
            assert body[field] == claude_code_request(model)[field]
        assert sent.header("anthropic-beta") == HEADERS["anthropic-beta"]
        assert sent.header("anthropic-version") == "2023-06-01"


async def test_claude_code_without_system_turns_is_passed_through_verbatim(gateway):
    body = claude_code_request("claude-sonnet-4-6")
    body["messages"] = body["messages"][:1]
    r = await post(gateway.url + "/v1/messages?beta=true", body, headers=HEADERS)
    assert r.status == 200, r.body
    assert gateway.anthropic_up.requests[-1].json == body
