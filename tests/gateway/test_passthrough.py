"""Native passthrough: a client speaking the upstream's own protocol gets its JSON through untouched
(but for `model`), its protocol headers forwarded, and the upstream sees mlxgw's key, never the client's."""

from __future__ import annotations

import pytest

from fakes.upstream import Reply
from tests.foundation.helpers import cli
from tests.gateway.helpers import ANTHROPIC_KEY, OPENAI_KEY, eventually, get, post

CLIENT_KEY = "client-key-that-must-stay-here"


async def _alias(gateway, pattern: str, backend: str, model: str) -> None:
    """Map `pattern` to a different upstream model name, and wait for the running gateway to see it."""
    cli("map", "add", pattern, backend, "--model", model)

    async def listed():
        r = await get(gateway.url + "/v1/models", headers={"authorization": f"Bearer {CLIENT_KEY}"})
        return pattern in [m["id"] for m in r.json["data"]]

    await eventually(listed, timeout=5)


def _no_client_key_upstream(rec) -> None:
    for name, value in rec.headers.items():
        assert CLIENT_KEY not in value, f"client key leaked upstream in {name}"
    assert CLIENT_KEY.encode() not in rec.body


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_openai_passthrough_keeps_every_field_but_model(gateway, stream):
    await _alias(gateway, "house-model", "oa", "gpt-4o-mini")
    body = {
        "model": "house-model",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "alice"},
        ],
        "seed": 1234,
        "logit_bias": {"50256": -100},
        "some_future_field": {"nested": [1, 2.5, None, True, "é"]},
        "temperature": 0,
        "max_completion_tokens": 77,
        "response_format": {"type": "text"},
        "user": "u-1",
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True, "future_option": 1}
    r = await post(
        gateway.url + "/v1/chat/completions", body, headers={"authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert r.status == 200, r.body
    sent = gateway.openai_up.requests[-1]
    assert sent.json == {**body, "model": "gpt-4o-mini"}
    assert sent.bearer == OPENAI_KEY
    _no_client_key_upstream(sent)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_anthropic_passthrough_keeps_fields_and_forwards_protocol_headers(gateway, stream):
    await _alias(gateway, "house-claude", "an", "claude-haiku-4-5")
    body = {
        "model": "house-claude",
        "max_tokens": 3000,
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            }
        ],
        "metadata": {"user_id": "user-abc"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "some_future_field": {"x": [1, None]},
        "service_tier": "auto",
        "stream": stream,
    }
    headers = {
        "x-api-key": CLIENT_KEY,
        "anthropic-version": "2099-01-01",
        "anthropic-beta": "interleaved-thinking-2025-05-14,context-management-2025-06-27",
    }
    r = await post(gateway.url + "/v1/messages", body, headers=headers)
    assert r.status == 200, r.body
    sent = gateway.anthropic_up.requests[-1]
    assert sent.json == {**body, "model": "claude-haiku-4-5"}
    assert sent.header("anthropic-version") == "2099-01-01"
    assert sent.header("anthropic-beta") == "interleaved-thinking-2025-05-14,context-management-2025-06-27"
    assert sent.header("x-api-key") == ANTHROPIC_KEY
    _no_client_key_upstream(sent)


async def test_translated_requests_carry_mlxgw_keys_and_a_default_anthropic_version(gateway):
    gateway.anthropic_up.push(Reply(text="ok"))
    gateway.openai_up.push(Reply(text="ok"))
    oa_body = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}
    r = await post(
        gateway.url + "/v1/chat/completions", oa_body, headers={"authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert r.status == 200, r.body
    sent = gateway.anthropic_up.requests[-1]
    assert sent.header("x-api-key") == ANTHROPIC_KEY
    assert sent.header("anthropic-version") == "2023-06-01"
    _no_client_key_upstream(sent)

    an_body = {"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "foo-2025"}
    r = await post(gateway.url + "/v1/messages", an_body, headers=headers)
    assert r.status == 200, r.body
    sent = gateway.openai_up.requests[-1]
    assert sent.bearer == OPENAI_KEY
    assert "anthropic-beta" not in sent.headers and "anthropic-version" not in sent.headers
    _no_client_key_upstream(sent)


async def test_the_upstream_key_is_the_decrypted_one_from_creds_set(gateway):
    """The fakes demand the exact key stored with `creds set` (401 otherwise), so a 200 through the
    gateway proves the vault decrypted it; an explicit check on top keeps the point obvious."""
    oa = gateway.openai(api_key=CLIENT_KEY)
    await oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    an = gateway.anthropic(api_key=CLIENT_KEY)
    await an.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert gateway.openai_up.requests[-1].bearer == OPENAI_KEY
    assert gateway.anthropic_up.requests[-1].header("x-api-key") == ANTHROPIC_KEY
    for rec in (gateway.openai_up.requests[-1], gateway.anthropic_up.requests[-1]):
        _no_client_key_upstream(rec)


async def test_a_new_upstream_key_is_used_without_restart(gateway):
    cli(
        "creds",
        "set",
        "oa",
        "--type",
        "openai",
        "--base-url",
        gateway.openai_up.url,
        input="sk-rotated-key-0003\n",
    )
    gateway.openai_up.require_key = "sk-rotated-key-0003"
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}

    async def accepted():
        return (await post(gateway.url + "/v1/chat/completions", body)).status == 200

    await eventually(accepted, timeout=5)
    assert gateway.openai_up.requests[-1].bearer == "sk-rotated-key-0003"
