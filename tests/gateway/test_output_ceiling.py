"""Claude Code's `max_tokens` (32k-128k) reaches an OpenAI upstream in a form it takes: the field a
reasoning model wants, at most the ceiling a backend or mapping declares."""

from __future__ import annotations

import contextlib
import copy
import json
import sqlite3

import pytest

from fakes.upstream import FakeAnthropic, FakeOpenAI, Reply
from mlxgw import config, paths
from tests.failover.rig import write_config
from tests.foundation.helpers import cli
from tests.gateway.claude_code import HEADERS as CLAUDE_CODE_HEADERS
from tests.gateway.claude_code import claude_code_request
from tests.gateway.helpers import ANTHROPIC_HEADERS, OPENAI_HEADERS, post, start_gateway

LIMIT = 16384


class ReasoningModelOpenAI(FakeOpenAI):
    """Answers like api.openai.com for an o-series / gpt-5 model: `max_tokens` is refused outright,
    and so is a `max_completion_tokens` above the model's output limit."""

    async def _answer_chat(self, request, rec, reply):
        body = rec.json if isinstance(rec.json, dict) else {}
        if "max_tokens" in body:
            return self._error_response(
                Reply(
                    status=400,
                    error_message="Unsupported parameter: 'max_tokens' is not supported with this model. "
                    "Use 'max_completion_tokens' instead.",
                    error_param="max_tokens",
                    error_code="unsupported_parameter",
                ),
                rec,
            )
        wanted = body.get("max_completion_tokens")
        if isinstance(wanted, int) and wanted > LIMIT:
            return self._error_response(
                Reply(
                    status=400,
                    error_message=f"max_completion_tokens is too large: {wanted}. This model supports at most "
                    f"{LIMIT} completion tokens, whereas you provided {wanted}.",
                    error_param="max_completion_tokens",
                    error_code="invalid_value",
                ),
                rec,
            )
        return await super()._answer_chat(request, rec, reply)


def claude_code(model: str = "claude-opus-4-7") -> dict:
    body = claude_code_request(model)
    body["messages"] = body["messages"][:1]
    return body


async def claude_code_turn(url: str, body: dict) -> None:
    r = await post(url + "/v1/messages?beta=true", body, headers=CLAUDE_CODE_HEADERS)
    assert r.status == 200, r.body
    names = [e["type"] for e in r.events()]
    assert names[0] == "message_start" and names[-1] == "message_stop", names


async def test_claude_code_through_a_reasoning_model_gets_max_completion_tokens_within_the_backend_ceiling():
    async with ReasoningModelOpenAI() as up:
        write_config(
            {"oa": ("openai", up.url, {"max_tokens_field": '"max_completion_tokens"', "max_output_tokens": LIMIT})},
            [{"pattern": "claude-*", "backend": "oa", "model": "o3"}],
        )
        server, url = await start_gateway()
        try:
            await claude_code_turn(url, claude_code())
        finally:
            await server.close()
    sent = up.requests[-1].json
    assert sent["model"] == "o3"
    assert sent["max_completion_tokens"] == LIMIT and "max_tokens" not in sent


async def test_a_mapping_ceiling_set_with_map_add_applies_to_its_requests():
    async with ReasoningModelOpenAI() as up:
        write_config({"oa": ("openai", up.url, {"max_tokens_field": '"max_completion_tokens"'})}, [])
        cli("map", "add", "claude-*", "oa", "--model", "gpt-5", "--max-output-tokens", "8192")
        listed = cli("map", "list", "--json").output
        assert '"max_output_tokens": 8192' in listed
        server, url = await start_gateway()
        try:
            await claude_code_turn(url, claude_code())
        finally:
            await server.close()
    assert up.requests[-1].json["max_completion_tokens"] == 8192


async def test_the_lower_of_backend_and_mapping_ceilings_wins():
    async with ReasoningModelOpenAI() as up:
        write_config(
            {"oa": ("openai", up.url, {"max_tokens_field": '"max_completion_tokens"', "max_output_tokens": 4000})},
            [{"pattern": "claude-*", "backend": "oa", "max_output_tokens": 9000}],
        )
        server, url = await start_gateway()
        try:
            await claude_code_turn(url, claude_code())
        finally:
            await server.close()
    assert up.requests[-1].json["max_completion_tokens"] == 4000


async def test_a_request_under_the_ceiling_keeps_its_own_limit():
    async with ReasoningModelOpenAI() as up:
        write_config(
            {"oa": ("openai", up.url, {"max_tokens_field": '"max_completion_tokens"', "max_output_tokens": LIMIT})},
            [{"pattern": "claude-*", "backend": "oa"}],
        )
        server, url = await start_gateway()
        try:
            body = {**claude_code(), "max_tokens": 1000}
            await claude_code_turn(url, body)
        finally:
            await server.close()
    assert up.requests[-1].json["max_completion_tokens"] == 1000


async def test_other_openai_compatible_servers_get_max_tokens_by_default():
    """Older OpenAI-compatible servers (llama.cpp before 2026, llama-cpp-python, llamafile) ignore
    `max_completion_tokens` and would generate without a limit; every one of them knows `max_tokens`."""
    async with FakeOpenAI() as up:
        write_config({"oa": ("openai", up.url, {})}, [{"pattern": "claude-*", "backend": "oa"}])
        server, url = await start_gateway()
        try:
            await claude_code_turn(url, {**claude_code(), "max_tokens": 2000})
        finally:
            await server.close()
    sent = up.requests[-1].json
    assert sent["max_tokens"] == 2000 and "max_completion_tokens" not in sent


def test_openai_itself_gets_max_completion_tokens_by_default():
    write_config(
        {
            "openai": ("openai", "https://api.openai.com/v1", {}),
            "azure": ("openai", "https://my-resource.openai.azure.com/openai/v1", {}),
            "vllm": ("openai", "http://127.0.0.1:8000/v1", {}),
            "pinned": ("openai", "https://api.openai.com/v1", {"max_tokens_field": '"max_tokens"'}),
        },
        [],
    )
    settings = config.load(paths.config_path())
    fields = {name: b.max_tokens_field for name, b in settings.backends.items()}
    assert fields == {
        "openai": "max_completion_tokens",
        "azure": "max_completion_tokens",
        "vllm": "max_tokens",
        "pinned": "max_tokens",
    }


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("max_output_tokens", "0", "at least 1"),
        ("max_output_tokens", '"lots"', "an integer"),
        ("max_tokens_field", '"max_new_tokens"', "max_completion_tokens"),
    ],
)
def test_bad_ceiling_settings_are_one_line_config_errors(key, value, reason):
    write_config({"oa": ("openai", "http://127.0.0.1:9/v1", {key: value})}, [])
    result = cli("map", "list", ok=False)
    assert result.exit_code != 0
    assert reason in result.output and key in result.output
    assert "Traceback" not in result.output


def test_max_tokens_field_belongs_to_openai_backends_only():
    write_config({"an": ("anthropic", "http://127.0.0.1:9", {"max_tokens_field": '"max_tokens"'})}, [])
    result = cli("map", "list", ok=False)
    assert result.exit_code != 0 and "max_tokens_field" in result.output


# ---- passthrough: untouched unless a ceiling applies ---------------------------------------------


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_openai_passthrough_is_clamped_only_above_the_ceiling(field):
    async with FakeOpenAI() as up:
        write_config(
            {"oa": ("openai", up.url, {"max_output_tokens": LIMIT})}, [{"pattern": "gpt-*", "backend": "oa"}]
        )
        server, url = await start_gateway()
        try:
            over = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], field: 100_000, "seed": 7}
            r = await post(url + "/v1/chat/completions", over, headers=OPENAI_HEADERS)
            assert r.status == 200, r.body
            under = {**over, field: 50}
            r = await post(url + "/v1/chat/completions", under, headers=OPENAI_HEADERS)
            assert r.status == 200, r.body
        finally:
            await server.close()
    assert up.requests[0].json == {**over, field: LIMIT}  # the client's own field, lowered; all else as sent
    assert up.requests[1].json == under


async def test_anthropic_passthrough_is_clamped_and_a_thinking_budget_kept_below_it():
    async with FakeAnthropic() as up:
        write_config(
            {"an": ("anthropic", up.url, {"max_output_tokens": 32000})}, [{"pattern": "claude-*", "backend": "an"}]
        )
        server, url = await start_gateway()
        try:
            body = {**claude_code(), "thinking": {"type": "enabled", "budget_tokens": 60000}}
            await claude_code_turn(url, copy.deepcopy(body))
        finally:
            await server.close()
    sent = up.requests[-1].json
    assert sent["max_tokens"] == 32000
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 31999}
    assert {k: v for k, v in sent.items() if k not in ("max_tokens", "thinking")} == {
        k: v for k, v in body.items() if k not in ("max_tokens", "thinking")
    }


async def test_translation_to_anthropic_respects_the_ceiling():
    async with FakeAnthropic() as up:
        write_config(
            {"an": ("anthropic", up.url, {"max_output_tokens": 8000})}, [{"pattern": "gpt-*", "backend": "an"}]
        )
        server, url = await start_gateway()
        try:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 64000}
            r = await post(url + "/v1/chat/completions", body, headers=OPENAI_HEADERS)
            assert r.status == 200, r.body
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            r = await post(url + "/v1/chat/completions", body, headers=OPENAI_HEADERS)
            assert r.status == 200, r.body
        finally:
            await server.close()
    assert [rec.json["max_tokens"] for rec in up.requests] == [8000, 4096]


async def test_anthropic_passthrough_without_a_ceiling_is_unchanged():
    async with FakeAnthropic() as up:
        write_config({"an": ("anthropic", up.url, {})}, [{"pattern": "claude-*", "backend": "an"}])
        server, url = await start_gateway()
        try:
            body = claude_code()
            r = await post(url + "/v1/messages", body, headers=ANTHROPIC_HEADERS)
            assert r.status == 200
        finally:
            await server.close()
    assert up.requests[-1].json == body


def test_a_store_from_before_mapping_ceilings_is_upgraded_in_place():
    """A home made by an earlier mlxgw has a mapping table without the column: the next command adds it."""
    write_config({}, [{"pattern": "old", "backend": "local", "model": "demo"}])
    cli("map", "list")  # makes the store
    with contextlib.closing(sqlite3.connect(paths.db_path())) as conn, conn:  # ...as schema 1 left it
        conn.execute("ALTER TABLE mapping DROP COLUMN max_output_tokens")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    cli("map", "add", "claude-*", "local", "--model", "demo", "--max-output-tokens", "512")
    listed = {m["pattern"]: m["max_output_tokens"] for m in json.loads(cli("map", "list", "--json").output)}
    assert listed == {"old": None, "claude-*": 512}
