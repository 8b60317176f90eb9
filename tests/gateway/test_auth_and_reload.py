"""Client keys, live reload of mappings, the model list and token counting, on a running gateway."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import anthropic
import openai
import pytest

from fakes.upstream import Reply, Usage, fake_token_count
from mlxgw import paths
from tests.foundation.helpers import cli
from tests.gateway.helpers import ANTHROPIC_KEY, OPENAI_KEY, eventually, get, post

CHAT = {
    "openai": (
        "/v1/chat/completions",
        {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]},
    ),
    "anthropic": (
        "/v1/messages",
        {"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    ),
}


async def _create_key(gateway) -> str:
    key = json.loads(cli("keys", "create", "k1", "--json").output)["key"]

    async def enforced():
        return (await get(gateway.url + "/v1/models")).status == 401

    await eventually(enforced, timeout=5)
    return key


def _assert_401(r, protocol: str) -> None:
    assert r.status == 401, r.body
    assert r.headers["request-id"] == r.headers["x-request-id"]
    body = r.json
    if protocol == "anthropic":
        assert body["type"] == "error"
        assert body["error"]["type"] == "authentication_error"
        assert body["request_id"] == r.headers["request-id"]
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["type"] == "authentication_error"


async def test_client_keys(gateway):
    # Before any key exists the gateway is open.
    r = await post(gateway.url + CHAT["openai"][0], CHAT["openai"][1])
    assert r.status == 200
    key = await _create_key(gateway)
    before = len(gateway.openai_up.requests) + len(gateway.anthropic_up.requests)

    for protocol, (path, body) in CHAT.items():
        _assert_401(await post(gateway.url + path, body), protocol)
        _assert_401(await post(gateway.url + path, body, headers={"authorization": "Bearer wrong"}), protocol)
        _assert_401(await post(gateway.url + path, body, headers={"x-api-key": key + "x"}), protocol)
        _assert_401(
            await post(gateway.url + path, body, headers={"authorization": key}), protocol
        )  # no "Bearer"
    _assert_401(
        await get(gateway.url + "/v1/models", headers={"anthropic-version": "2023-06-01"}), "anthropic"
    )
    _assert_401(await get(gateway.url + "/v1/models"), "openai")
    r = await post(gateway.url + "/v1/messages/count_tokens", {"model": "claude-x", "messages": []})
    _assert_401(r, "anthropic")
    # Refused requests never reached an upstream.
    assert len(gateway.openai_up.requests) + len(gateway.anthropic_up.requests) == before

    for protocol, (path, body) in CHAT.items():
        for headers in (
            {"authorization": f"Bearer {key}"},
            {"x-api-key": key},
            {"Authorization": f"bearer {key}"},
        ):
            r = await post(gateway.url + path, body, headers=headers)
            assert r.status == 200, (protocol, headers, r.body)
            sent = (gateway.anthropic_up if protocol == "openai" else gateway.openai_up).requests[-1]
            assert key not in json.dumps(sent.headers) and key.encode() not in sent.body
    assert gateway.anthropic_up.requests[-1].header("x-api-key") == ANTHROPIC_KEY
    assert gateway.openai_up.requests[-1].bearer == OPENAI_KEY

    # /health stays open.
    assert (await get(gateway.url + "/health")).status == 200

    # The key's last use shows in `keys list` (recorded off the request path).
    def recorded():
        (listed,) = json.loads(cli("keys", "list", "--json").output)
        return listed["name"] == "k1" and listed["last_used_at"] is not None

    await eventually(recorded, timeout=5)

    # The official SDKs with the key, and without it.
    m = await gateway.anthropic(api_key=key).messages.create(**CHAT["anthropic"][1])
    assert m.content[0].text
    c = await gateway.openai(api_key=key).chat.completions.create(**CHAT["openai"][1])
    assert c.choices[0].message.content
    with pytest.raises(anthropic.AuthenticationError):
        await gateway.anthropic(api_key="nope").messages.create(**CHAT["anthropic"][1])
    with pytest.raises(openai.AuthenticationError):
        await gateway.openai(api_key="nope").chat.completions.create(**CHAT["openai"][1])


async def test_a_revoked_key_is_refused_without_restart(gateway):
    key = await _create_key(gateway)
    cli("keys", "create", "k2", "--json")
    cli("keys", "revoke", "k1")

    async def refused():
        return (await get(gateway.url + "/v1/models", headers={"x-api-key": key})).status == 401

    await eventually(refused, timeout=5)


async def test_a_new_mapping_is_routable_without_restart(gateway):
    body = {"model": "house-special", "messages": [{"role": "user", "content": "hi"}]}
    r = await post(gateway.url + "/v1/chat/completions", body)
    assert r.status == 404
    cli("map", "add", "house-special", "an", "--model", "claude-haiku-4-5")
    gateway.anthropic_up.push(*[Reply(text="special")] * 50)

    async def routable():
        return (await post(gateway.url + "/v1/chat/completions", body)).status == 200

    await eventually(routable, timeout=5)
    gateway.anthropic_up.replies.clear()
    assert gateway.anthropic_up.requests[-1].json["model"] == "claude-haiku-4-5"

    cli("map", "remove", "house-special")

    async def gone():
        return (await post(gateway.url + "/v1/chat/completions", body)).status == 404

    await eventually(gone, timeout=5)


# The fakes offer gpt-4o, gpt-4o-mini (oa) and claude-sonnet-4-6, claude-haiku-4-5 (an); the
# wildcard mappings gpt-* and claude-* list the upstream ids they route.
UPSTREAM_IDS = ["claude-haiku-4-5", "claude-sonnet-4-6", "gpt-4o", "gpt-4o-mini"]


async def test_models_lists_mappings_and_the_upstream_models_they_route_in_either_shape(gateway):
    cli("map", "add", "house-model", "oa")
    cli("map", "add", "house-claude", "an", "--model", "claude-haiku-4-5")
    expected = sorted(["house-claude", "house-model", *UPSTREAM_IDS])

    async def listed():
        r = await get(gateway.url + "/v1/models")
        return r if {"house-model", "house-claude"} <= {m["id"] for m in r.json["data"]} else None

    r = await eventually(listed, timeout=5)
    assert r.json["object"] == "list"
    ids = [m["id"] for m in r.json["data"]]
    assert set(ids[:2]) == {"house-model", "house-claude"}  # exact names first
    assert sorted(ids) == expected
    assert all(
        m["object"] == "model" and isinstance(m["created"], int) and m["owned_by"] for m in r.json["data"]
    )

    r = await get(gateway.url + "/v1/models", headers={"anthropic-version": "2023-06-01"})
    assert r.status == 200
    body = r.json
    assert set(body) >= {"data", "has_more", "first_id", "last_id"}
    assert body["has_more"] is False
    assert sorted(m["id"] for m in body["data"]) == expected
    assert body["first_id"] == body["data"][0]["id"] and body["last_id"] == body["data"][-1]["id"]
    for m in body["data"]:
        assert m["type"] == "model" and m["display_name"]
        assert m["created_at"].endswith("Z") and "T" in m["created_at"]

    # And through the SDKs.
    page = await gateway.anthropic().models.list()
    assert sorted(m.id for m in page.data) == expected
    listing = await gateway.openai().models.list()
    assert sorted(m.id for m in listing.data) == expected
    # Each upstream was asked once: the lists are cached.
    assert len([q for q in gateway.openai_up.requests if q.path == "/v1/models"]) == 1
    assert gateway.openai_up.requests[-1].bearer == OPENAI_KEY


async def test_models_lists_an_id_only_under_the_mapping_that_would_serve_it(gateway):
    cli("map", "add", "gpt-4o*", "an", "--priority", "5", "--model", "claude-haiku-4-5")
    # gpt-4o and gpt-4o-mini now reach `an` through a mapping with a fixed model: not oa's to list.
    ids = await eventually(lambda: _ids_without(gateway, "gpt-4o"), timeout=5)
    assert "gpt-4o-mini" not in ids and "claude-sonnet-4-6" in ids


async def _ids_without(gateway, model):
    ids = [m["id"] for m in (await get(gateway.url + "/v1/models")).json["data"]]
    return ids if model not in ids else None


async def test_models_still_answers_when_an_upstream_list_fails(gateway):
    gateway.openai_up.push(Reply(status=500), endpoint="models")
    r = await get(gateway.url + "/v1/models")
    assert r.status == 200
    ids = [m["id"] for m in r.json["data"]]
    assert "gpt-4o" not in ids and "claude-sonnet-4-6" in ids


async def test_count_tokens_for_an_anthropic_upstream(gateway):
    body = {
        "model": "claude-sonnet-4-6",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "How many tokens is this?"}],
        "tools": [{"name": "t", "input_schema": {"type": "object"}}],
    }
    r = await post(
        gateway.url + "/v1/messages/count_tokens?beta=true", body, headers={"anthropic-version": "2023-06-01"}
    )
    assert r.status == 200, r.body
    sent = gateway.anthropic_up.requests[-1]
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.header("x-api-key") == ANTHROPIC_KEY
    assert "max_tokens" not in sent.json
    assert r.json == {"input_tokens": fake_token_count(sent.json)}
    assert r.headers["request-id"]

    gateway.anthropic_up.push(Reply(usage=Usage(input_tokens=4242)), endpoint="count_tokens")
    counted = await gateway.anthropic().messages.count_tokens(model="claude-x", messages=body["messages"])
    assert counted.input_tokens == 4242


async def test_count_tokens_for_an_openai_upstream_is_an_estimate(gateway):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "word " * 400}]}
    r = await post(
        gateway.url + "/v1/messages/count_tokens", body, headers={"anthropic-version": "2023-06-01"}
    )
    assert r.status == 200, r.body
    assert 300 <= r.json["input_tokens"] <= 1000
    assert not gateway.openai_up.requests


@pytest.mark.parametrize(
    ("body", "status"),
    [({"model": "nope", "messages": []}, 404), ({"messages": []}, 400), (None, 400)],
    ids=["unmapped", "no-model", "no-body"],
)
async def test_count_tokens_errors_are_anthropic_shaped(gateway, body, status):
    r = (
        await post(gateway.url + "/v1/messages/count_tokens", body)
        if body is not None
        else await post(gateway.url + "/v1/messages/count_tokens", data=b"{")
    )
    assert r.status == status
    assert r.json["type"] == "error" and r.json["error"]["type"]


async def test_a_busy_store_neither_stalls_nor_fails_a_keyed_request(gateway):
    """The key's last use is bookkeeping: while another process holds the store's write lock (a
    command, a backup, an sqlite3 shell), requests are answered at once, and the use is recorded later."""
    key = await _create_key(gateway)
    conn = sqlite3.connect(paths.db_path(), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        path, body = CHAT["openai"]
        chat, health = await asyncio.gather(
            post(gateway.url + path, body, headers={"x-api-key": key}), get(gateway.url + "/health")
        )
        took = time.monotonic() - started
    finally:
        conn.rollback()
        conn.close()
    assert chat.status == 200, chat.body
    assert health.status == 200
    assert took < 2, f"the gateway stood still for {took:.1f} s while the store was busy"

    def recorded():
        (listed,) = json.loads(cli("keys", "list", "--json").output)
        return listed["last_used_at"] is not None

    await eventually(recorded, timeout=10)
