"""Sticky failover per session: a session whose request failed over stays on the fallback that
answered for the mapping's `sticky_s` (1 s here), other sessions keep the chain's first choice, and
after `sticky_s` the session is back on it. Sessions as the clients name them: Claude Code's
`metadata.user_id` (the recorded one), Codex's `session-id` header, else the client key and model.
Through the real gateway with the official SDKs; the backends are fake OpenAI upstreams."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import openai
import pytest

from fakes.upstream import FakeOpenAI, Reply
from tests.failover.rig import FAST, gateway_for
from tests.foundation.helpers import cli

STICKY_S = 1.0
FIXTURES = Path(__file__).parents[1] / "agents" / "fixtures"
MSG = [{"role": "user", "content": "hi"}]
PRIMARY_TEXT, FALLBACK_TEXT = "from the primary", "from the fallback"
ROWS_WAIT = 50  # polls of the request log, 0.1 s apart


def claude_code_user_id(fixture: str) -> str:
    return json.loads((FIXTURES / fixture).read_text())["body"]["metadata"]["user_id"]


@contextlib.asynccontextmanager
async def sticky_gateway(*, fallback_policy: dict | None = None) -> AsyncIterator[tuple[str, FakeOpenAI, FakeOpenAI]]:
    """Model "m": the primary (which fails its first request, every try of it) then the fallback."""
    failing = [Reply(status=500)] * FAST["max_tries"]
    async with FakeOpenAI(*failing) as primary, FakeOpenAI() as fallback:
        primary.default_text, fallback.default_text = PRIMARY_TEXT, FALLBACK_TEXT
        backends = {"p": ("openai", primary.url, {}), "b": ("openai", fallback.url, fallback_policy or {})}
        mapping = {"pattern": "m", "backend": "p", "fallbacks": ["b"], "sticky_s": STICKY_S}
        async with gateway_for(backends, [mapping], {"request_log_days": 1}) as url:
            yield url, primary, fallback


async def logged(n: int) -> list[dict]:
    """`mlxgw log --json`'s rows, oldest first, once the daemon has written `n`."""
    for _ in range(ROWS_WAIT):
        rows = [json.loads(line) for line in cli("log", "--json", "-n", "100").output.splitlines()]
        if len(rows) >= n:
            return sorted(rows, key=lambda row: row["id"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {n} log rows, have {len(rows)}")


async def test_a_claude_code_session_stays_on_its_fallback_for_sticky_s_and_others_do_not(monkeypatch):
    async with sticky_gateway() as (url, primary, fallback):
        client = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)

        async def ask(session_fixture: str) -> str:
            message = await client.messages.create(
                model="m", max_tokens=16, messages=MSG, metadata={"user_id": claude_code_user_id(session_fixture)}
            )
            return message.content[0].text

        assert await ask("claude_code_turn1.json") == FALLBACK_TEXT  # the primary fails: failover
        assert await ask("claude_code_turn2.json") == FALLBACK_TEXT  # same session: sticks
        assert await ask("claude_code_other_session.json") == PRIMARY_TEXT  # another session does not
        assert await ask("claude_code_turn2.json") == FALLBACK_TEXT
        assert len(primary.requests) == FAST["max_tries"] + 1
        await asyncio.sleep(STICKY_S + 0.2)  # the stickiness runs out
        assert await ask("claude_code_turn2.json") == PRIMARY_TEXT
        assert await ask("claude_code_turn1.json") == PRIMARY_TEXT  # and stays with the first choice
        rows = await logged(6)
    assert [(row["backend"], row["sticky"]) for row in rows] == [
        ("b", False), ("b", True), ("p", False), ("b", True), ("p", False), ("p", False)
    ]
    assert rows[0]["attempts"][0]["error"] and rows[1]["attempts"] == [
        {"backend": "b", "model": "m", "tries": 1, "error": None, "sticky": True}
    ]
    monkeypatch.setenv("COLUMNS", "250")  # the table's cells whole
    table = cli("log").output
    assert table.count("b:m (sticky)") == 2 and table.count("(sticky)") == 2


async def test_a_codex_session_header_sticks_and_without_any_session_nothing_does():
    async with sticky_gateway() as (url, primary, fallback):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)

        async def ask(session: str | None) -> str:
            headers = {"session-id": session} if session else {}
            return (await client.responses.create(model="m", input="hi", extra_headers=headers)).output_text

        assert await ask("codex-1") == FALLBACK_TEXT
        assert await ask("codex-1") == FALLBACK_TEXT
        assert await ask("codex-2") == PRIMARY_TEXT
        # No session named and no client key: callers cannot be told apart, so nothing sticks.
        primary.push(*[Reply(status=500)] * FAST["max_tries"])
        assert await ask(None) == FALLBACK_TEXT
        assert await ask(None) == PRIMARY_TEXT
        rows = await logged(5)
    assert [row["sticky"] for row in rows] == [False, True, False, False, False]


async def test_the_client_key_and_model_are_the_session_when_the_client_names_none():
    alice = json.loads(cli("keys", "create", "alice", "--json").output)["key"]
    bob = json.loads(cli("keys", "create", "bob", "--json").output)["key"]
    async with sticky_gateway() as (url, primary, fallback):

        async def ask(key: str) -> str:
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
            return (await client.chat.completions.create(model="m", messages=MSG)).choices[0].message.content

        assert await ask(alice) == FALLBACK_TEXT
        assert await ask(alice) == FALLBACK_TEXT
        assert await ask(bob) == PRIMARY_TEXT
        rows = await logged(3)
    assert [(row["client_key"], row["sticky"]) for row in rows] == [("alice", False), ("alice", True), ("bob", False)]


async def test_a_sticky_fallback_whose_breaker_is_open_is_skipped():
    async with sticky_gateway(fallback_policy={"breaker_failures": 1}) as (url, primary, fallback):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)

        async def ask(session: str) -> str:
            answer = await client.responses.create(model="m", input="hi", extra_headers={"session-id": session})
            return answer.output_text

        assert await ask("stuck") == FALLBACK_TEXT
        await fallback.close()  # the fallback goes away, then fails another session: its breaker opens
        primary.push(*[Reply(status=500)] * FAST["max_tries"])
        with pytest.raises(openai.APIStatusError):
            await ask("other")
        assert await ask("stuck") == PRIMARY_TEXT
        rows = await logged(3)
    assert [a["backend"] for a in rows[1]["attempts"]] == ["p", "b"]
    # Not sent to its open circuit first: the chain as configured, whose first choice answered.
    assert [a["backend"] for a in rows[2]["attempts"]] == ["p"] and not rows[2]["sticky"]
