"""A system message sent after the conversation began stays where it was for every target but
Anthropic: Claude Code's recorded session (bench/sessions/claude_code.json.xz) replayed with the
anthropic SDK to a Chat Completions and a Responses upstream keeps its head from turn to turn; one
between tool calls and their results comes after the results; Anthropic gets it in `system`."""

from __future__ import annotations

import anthropic
import openai
import pytest

from bench.agent import load_session
from fakes.upstream import FakeAnthropic, FakeOpenAI, FakeResponses, Reply
from tests.agents.helpers import UPSTREAM_KEY, gateway

LATE_NOTE = "The user hasn't heard from you in a while."


async def replay(url: str, body: dict, **changes) -> None:
    """`body` (with `changes`) sent as Claude Code sends it, whole rather than streamed."""
    body = {**body, **changes, "stream": False}
    async with anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-replay", max_retries=0) as client:
        fields = {k: v for k, v in body.items() if k not in ("model", "max_tokens", "messages")}
        await client.messages.create(model=body["model"], max_tokens=body["max_tokens"], messages=body["messages"],
                                     extra_body=fields, extra_query={"beta": "true"}, timeout=30)


def session_turns(*numbers: int) -> list[dict]:
    requests = load_session("claude_code")["requests"]
    return [requests[n]["body"] for n in numbers]


async def test_chat_completions_upstream_gets_late_system_messages_in_place():
    before, after = session_turns(4, 5)
    async with FakeOpenAI(Reply(text="ok"), require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "openai", "claude-*", "gpt-5") as url:
            await replay(url, before)
            await replay(url, after)
    turn4, turn5 = (r.json["messages"] for r in up.requests)
    assert turn5[: len(turn4)] == turn4  # turn 5 only adds to turn 4: its head is unchanged
    roles = [m["role"] for m in turn5]
    assert roles[:3] == ["system", "user", "system"]  # Claude Code's "# Environment" after the first user turn
    assert turn5[2]["content"].startswith("# Environment")
    assert roles[-3:] == ["assistant", "tool", "system"]  # the turn-ending note after the tool result
    assert turn5[-1]["content"].startswith(LATE_NOTE)


async def test_responses_upstream_gets_late_system_messages_as_input_items_in_place():
    before, after = session_turns(4, 5)
    async with FakeResponses(Reply(text="ok"), require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "responses", "claude-*", "gpt-5") as url:
            await replay(url, before)
            await replay(url, after)
    turn4, turn5 = (r.json for r in up.requests)
    assert turn4["instructions"] == turn5["instructions"]
    assert turn5["input"][: len(turn4["input"])] == turn4["input"]
    assert [i.get("role") or i["type"] for i in turn5["input"][-2:]] == ["function_call_output", "system"]
    (note,) = turn5["input"][-1]["content"]
    assert note["type"] == "input_text" and note["text"].startswith(LATE_NOTE)


TOOLS = [{"name": "bash", "description": "Run a command.", "input_schema": {"type": "object", "properties": {}}}]
BETWEEN = [
    {"role": "user", "content": "list the files"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"cmd": "ls"}},
                                      {"type": "tool_use", "id": "toolu_2", "name": "bash", "input": {"cmd": "pwd"}}]},
    {"role": "system", "content": "Plan mode is on."},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py"},
                                 {"type": "tool_result", "tool_use_id": "toolu_2", "content": "/w"},
                                 {"type": "text", "text": "and then?"}]},
]


async def test_a_system_message_between_tool_calls_and_results_comes_after_the_results():
    body = {"model": "claude-x", "max_tokens": 64, "system": "Be brief.", "messages": BETWEEN, "tools": TOOLS}
    async with FakeOpenAI(Reply(text="ok"), require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "openai", "claude-*", "gpt-5") as url:
            await replay(url, body)
    sent = up.requests[0].json["messages"]
    assert [(m["role"], m.get("tool_call_id")) for m in sent] == [
        ("system", None), ("user", None), ("assistant", None), ("tool", "toolu_1"), ("tool", "toolu_2"),
        ("system", None), ("user", None),
    ]
    assert sent[5]["content"] == "Plan mode is on." and sent[6]["content"] == "and then?"


async def test_an_openai_client_system_message_between_tool_results_comes_after_them():
    """Translated for a Responses upstream; a Chat Completions one gets the client's own body."""
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "list the files"},
        {"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": "{}"}},
            {"id": "call_2", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a.py"},
        {"role": "system", "content": "Plan mode is on."},
        {"role": "tool", "tool_call_id": "call_2", "content": "/w"},
    ]
    tools = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object", "properties": {}}}}]
    async with FakeResponses(Reply(text="ok"), require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "responses", "gpt-*", "gpt-5") as url:
            async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
                await client.chat.completions.create(model="gpt-x", messages=messages, tools=tools, timeout=30)
    sent = up.requests[0].json
    assert sent["instructions"] == "Be brief."
    assert [(i["type"], i.get("role") or i.get("call_id")) for i in sent["input"]] == [
        ("message", "user"), ("function_call", "call_1"), ("function_call", "call_2"),
        ("function_call_output", "call_1"), ("function_call_output", "call_2"), ("message", "system"),
    ]
    assert sent["input"][-1]["content"] == [{"type": "input_text", "text": "Plan mode is on."}]


async def test_a_responses_clients_late_developer_message_stays_in_place_for_chat_completions():
    """Codex's leading developer messages are the system prompt; one sent after the first turn is not."""
    items = [
        {"role": "developer", "content": "You are a coding agent."},
        {"role": "user", "content": "run the tests"},
        {"type": "function_call", "call_id": "call_1", "name": "bash", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "1 failed"},
        {"role": "developer", "content": "Approvals are now on request."},
        {"role": "user", "content": "fix it"},
    ]
    tools = [{"type": "function", "name": "bash", "parameters": {"type": "object", "properties": {}}}]
    async with FakeOpenAI(Reply(text="ok"), require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "openai", "gpt-*", "gpt-5") as url:
            async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
                await client.responses.create(model="gpt-x", input=items, tools=tools, store=False, timeout=30)
    sent = up.requests[0].json["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "system", "user"]
    assert sent[0]["content"] == "You are a coding agent."
    assert sent[4]["content"] == "Approvals are now on request."


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_upstream_gets_late_system_messages_in_system(stream):
    """The Messages API refuses system turns in `messages`: translated, they join `system`, in order."""
    messages = [{"role": "user", "content": "hi"}, {"role": "system", "content": "Note one."},
                {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"},
                {"role": "system", "content": "Note two."}]
    async with FakeAnthropic(Reply(text="ok"), require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "anthropic", "gpt-*", "claude-sonnet-4-6") as url:
            async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
                if stream:
                    async for _ in await client.chat.completions.create(model="gpt-x", messages=messages, stream=True):
                        pass
                else:
                    await client.chat.completions.create(model="gpt-x", messages=messages, timeout=30)
    sent = up.requests[0].json
    assert [b["text"] for b in sent["system"]] == ["Note one.", "Note two."]
    assert [(m["role"], m["content"][0]["text"]) for m in sent["messages"]] == [
        ("user", "hi"), ("assistant", "hello"), ("user", "bye")]
