"""Revoking client keys, through the real CLI against a running gateway: a revoked key stops working,
revoking the last one says what that does, and a daemon on a network address never opens up."""

from __future__ import annotations

import json

import openai
import pytest

from mlxgw import config, paths
from mlxgw.daemon.lock import ServeLock
from tests.foundation.helpers import cli
from tests.gateway.helpers import eventually
from tests.security.rig import ANTHROPIC, CHAT, error_shape, gateway


def _create(name: str) -> str:
    return json.loads(cli("keys", "create", name, "--json").output)["key"]


def _sdk(url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=10)


async def test_a_revoked_key_is_refused_once_the_daemon_reloads_and_the_others_keep_working():
    async with gateway() as gw:
        old, kept = _create("old"), _create("kept")
        async with _sdk(gw.url, old) as with_old, _sdk(gw.url, kept) as with_kept:
            assert (await with_old.chat.completions.create(**CHAT)).choices[0].message.content
            revoked = cli("keys", "revoke", "old")
            assert "revoked client key old" in revoked.output
            assert "last client key" not in revoked.output

            async def refused():
                try:
                    await with_old.chat.completions.create(**CHAT)
                except openai.AuthenticationError:
                    return True
                return False

            await eventually(refused, timeout=5)  # the daemon re-reads keys every 0.2 s here
            assert (await with_kept.chat.completions.create(**CHAT)).choices[0].message.content


async def test_revoking_the_last_key_says_the_gateway_is_open_and_how_to_keep_it_closed():
    async with gateway() as gw:
        key = _create("only")

        async def enforced():
            return (await gw.call("POST", "/v1/chat/completions")).status == 401

        await eventually(enforced, timeout=5)
        async with _sdk(gw.url, key) as sdk:
            assert (await sdk.chat.completions.create(**CHAT)).choices[0].message.content
        out = cli("keys", "revoke", "only").output
        assert "revoked client key only" in out
        assert "last client key" in out and "accepts every caller on this machine" in out
        assert "mlxgw keys create" in out and "create the new one first" in out

        # What it says is what happens: any caller, with no key or with the revoked one, is served again.
        async def open_again():
            return (await gw.call("POST", "/v1/chat/completions")).status == 200

        await eventually(open_again, timeout=5)
        assert (await gw.call("POST", "/v1/chat/completions", headers={"authorization": f"Bearer {key}"})).status == 200


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_a_network_bound_daemon_without_keys_refuses_every_v1_request(protocol):
    async with gateway("0.0.0.0") as gw:
        path, headers = ("/v1/messages", ANTHROPIC) if protocol == "anthropic" else ("/v1/chat/completions", {})
        for method, where in [("POST", path), ("GET", "/v1/models"), ("POST", "/v1/messages/count_tokens")]:
            r = await gw.call(method, where, headers=headers if where != "/v1/messages/count_tokens" else ANTHROPIC)
            assert r.status == 401, (where, r.body)
            shape = "anthropic" if where.startswith("/v1/messages") else protocol
            error = error_shape(shape, r.json)
            assert error["type"] == "authentication_error" and "mlxgw keys create" in error["message"]
            assert "0.0.0.0" in error["message"]
        assert gw.upstream.requests == []
        assert (await gw.call("GET", "/health")).status == 200  # liveness stays open


async def test_revoking_the_last_key_of_a_network_bound_daemon_warns_and_keeps_it_closed():
    async with gateway("0.0.0.0") as gw:
        key = _create("only")

        async def served():
            return (await gw.call("POST", "/v1/chat/completions", headers={"x-api-key": key})).status == 200

        await eventually(served, timeout=5)
        # This test's gateway stands in for `mlxgw serve --host 0.0.0.0`: it holds the home's lock and
        # announces that address, as the daemon does.
        with ServeLock.acquire() as lock:
            lock.announce("0.0.0.0", gw.port)
            out = cli("keys", "revoke", "only").output
        assert f"listens on 0.0.0.0:{gw.port}, a network address" in out
        assert "refuses every /v1 request" in out and "mlxgw keys create" in out
        assert "accepts every caller" not in out

        async def closed():
            r = await gw.call("POST", "/v1/chat/completions", headers={"x-api-key": key})
            return r.status == 401 and "mlxgw keys create" in r.json["error"]["message"]

        await eventually(closed, timeout=5)
        assert (await gw.call("POST", "/v1/chat/completions")).status == 401


async def test_insecure_serves_a_network_address_without_keys():
    async with gateway("0.0.0.0", insecure=True) as gw:
        assert (await gw.call("POST", "/v1/chat/completions")).status == 200


def test_revoking_the_last_key_with_a_network_address_in_the_config_says_it_stays_closed(mlxgw_home):
    path = paths.config_path()
    config.ensure_config(path)
    path.write_text(path.read_text().replace('host = "127.0.0.1"', 'host = "0.0.0.0"', 1))
    _create("only")
    out = cli("keys", "revoke", "only").output
    assert "the config has the daemon listen on 0.0.0.0:8421, a network address" in out
    assert "refuses every /v1 request" in out and "accepts every caller" not in out
