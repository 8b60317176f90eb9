"""/health tells anyone the gateway is alive, and only its owner which backends it has and how they
fare (breakers, key problems: they can name local paths)."""

from __future__ import annotations

import json

from fakes.upstream import refused_url
from mlxgw import __version__
from tests.daemon.helpers import Daemons, free_port, run_cli, use_port
from tests.foundation.helpers import cli
from tests.gateway.helpers import eventually
from tests.security.rig import gateway

BARE = {"status": "ok", "version": __version__}


async def test_health_detail_needs_a_client_key_once_keys_exist():
    async with gateway() as gw:
        # No keys yet, and the caller is on this machine: the detail.
        r = await gw.call("GET", "/health")
        assert r.status == 200 and "oa" in r.json["backends"], r.json
        assert r.json["backends"]["oa"]["breaker"]["state"] == "closed"

        key = json.loads(cli("keys", "create", "k", "--json").output)["key"]

        async def bare():
            r = await gw.call("GET", "/health")
            return r.status == 200 and r.json == BARE

        await eventually(bare, timeout=5)
        for headers in ({"authorization": "Bearer wrong"}, {"x-api-key": key + "x"}, {"authorization": key}):
            r = await gw.call("GET", "/health", headers=headers)
            assert r.status == 200 and r.json == BARE, headers
        for headers in ({"authorization": f"Bearer {key}"}, {"x-api-key": key}):
            r = await gw.call("GET", "/health", headers=headers)
            assert r.status == 200 and set(r.json) >= {"status", "version", "uptime_s", "backends", "local_models"}
            assert "oa" in r.json["backends"]


def test_status_still_lists_every_backend_when_keys_exist(mlxgw_home):
    """`mlxgw status` used to read the backends from /health; it must not lose them to a key."""
    use_port(free_port())
    run_cli("creds", "set", "oa", "--type", "openai", "--base-url", refused_url("/v1"), input="sk-test-unused-0003\n")
    run_cli("keys", "create", "k")
    daemons = Daemons()
    try:
        daemons.start()
        report = json.loads(run_cli("status", "--json").stdout)
        assert report["answering"] is True
        assert report["breakers"]["oa"]["state"] == "closed"  # configured, never used yet
        assert report["backend_errors"] == {}
    finally:
        daemons.teardown()
