"""Who may read /metrics and the dashboard's endpoints: the client keys as for /v1 (with a setting
that opens /metrics to a scraper on this machine), and the Host/Origin guard before anything."""

from __future__ import annotations

import json

import pytest

from fakes.upstream import FakeOpenAI
from mlxgw import __version__, paths
from tests.failover.rig import gateway_for
from tests.foundation.helpers import cli
from tests.gateway.helpers import eventually, get
from tests.observability.helpers import scrape

READ_ENDPOINTS = ("/metrics", "/mlxgw/requests", "/mlxgw/stats")


def _openai_error(r, status: int) -> dict:
    assert r.status == status, r.body
    body = r.json
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


async def _new_key(url: str) -> str:
    key = json.loads(cli("keys", "create", "watcher", "--json").output)["key"]

    async def enforced():
        return (await get(url + "/metrics")).status == 401

    await eventually(enforced, timeout=5)
    return key


async def test_client_keys_guard_metrics_and_the_request_log():
    async with FakeOpenAI() as up, gateway_for({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}]) as url:
        for path in READ_ENDPOINTS:  # no keys yet: this machine may read them
            assert (await get(url + path)).status == 200, path
        key = await _new_key(url)
        for path in READ_ENDPOINTS:
            error = _openai_error(await get(url + path), 401)
            assert error["type"] == "authentication_error" and "missing API key" in error["message"]
            assert _openai_error(await get(url + path, headers={"authorization": "Bearer nope"}), 401)["message"] == "invalid API key"
            assert (await get(url + path, headers={"authorization": f"Bearer {key}"})).status == 200, path
            assert (await get(url + path, headers={"x-api-key": key})).status == 200, path
        # mlxgw's own CLI sends no key: the status it shows stays open to this machine.
        assert (await get(url + "/mlxgw/status")).status == 200
        assert key not in (await get(url + "/metrics", headers={"x-api-key": key})).body.decode()


async def test_metrics_open_on_loopback_lets_a_local_scraper_in_without_a_key():
    async with FakeOpenAI() as up, gateway_for({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}]) as url:
        await _new_key(url)
        config = paths.config_path()
        config.write_text(config.read_text().replace("[server]\n", "[server]\nmetrics_open_on_loopback = true\n", 1))

        async def opened():
            return (await get(url + "/metrics")).status == 200

        await eventually(opened, timeout=5)
        samples = await scrape(url)
        assert ("mlxgw_info", frozenset({("version", __version__)})) in samples
        # Only /metrics: the request log and the API still want a key.
        assert (await get(url + "/mlxgw/requests")).status == 401
        assert (await get(url + "/v1/models")).status == 401


def test_metrics_open_on_loopback_must_be_a_boolean():
    paths.config_path().parent.mkdir(parents=True, exist_ok=True)
    paths.config_path().write_text('[server]\nmetrics_open_on_loopback = "yes"\n')
    out = cli("config", "validate", ok=False).output
    assert "metrics_open_on_loopback" in out and "true or false" in out and ":2" in out


@pytest.mark.parametrize("path", [*READ_ENDPOINTS, "/ui", "/ui/dashboard.js"])
async def test_the_guard_refuses_foreign_hosts_and_origins(path):
    async with FakeOpenAI() as up, gateway_for({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}]) as url:
        assert (await get(url + path, headers={"host": "evil.example"})).status == 421
        assert (await get(url + path, headers={"origin": "http://evil.example"})).status == 403
        # The page's own origin is the gateway's: its fetches pass.
        assert (await get(url + path, headers={"origin": url})).status == 200
