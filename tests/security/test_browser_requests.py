"""What a web page in the user's browser can make the gateway do: nothing, unless the config lists
its origin. Requests shaped as browsers send them (a no-preflight text/plain POST, a foreign Origin,
a rebound Host, an OPTIONS preflight), and the SDKs that must keep working untouched."""

from __future__ import annotations

import socket

import anthropic
import openai
import pytest

from tests.gateway.helpers import eventually
from tests.security.rig import ANTHROPIC, CHAT, error_shape, gateway, set_server_option

EVIL = "https://evil.example"
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]
)
async def test_a_post_that_is_not_json_gets_415_and_reaches_no_upstream(protocol, content_type):
    async with gateway() as gw:
        headers = {**ANTHROPIC} if protocol == "anthropic" else {}
        if content_type:
            headers["content-type"] = content_type
        # The body is valid JSON: a page's no-preflight POST can carry that as text/plain.
        r = await gw.call("POST", PATHS[protocol], data=b'{"model": "gpt-4o", "messages": [], "max_tokens": 5}', headers=headers)
        assert r.status == 415, r.body
        assert "application/json" in error_shape(protocol, r.json)["message"]
        assert r.headers["request-id"]
        assert gw.upstream.requests == []


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
async def test_json_with_parameters_or_in_capitals_is_json(content_type):
    async with gateway() as gw:
        r = await gw.call("POST", PATHS["openai"], headers={"content-type": content_type})
        assert r.status == 200, r.body


REBOUND = ["attacker.example:8421", "attacker.example", "127.0.0.1.attacker.example", "localhost.attacker.example"]


@pytest.mark.parametrize("host", REBOUND)
async def test_a_foreign_host_is_refused_on_every_route(host):
    async with gateway() as gw:
        routes = [
            ("POST", "/v1/chat/completions", "openai", {}),
            ("POST", "/v1/messages", "anthropic", ANTHROPIC),
            ("GET", "/v1/models", "openai", {}),
            ("GET", "/health", "openai", {}),
            ("GET", "/mlxgw/status", "openai", {}),
            ("GET", "/mlxgw/models", "openai", {}),
            ("POST", "/mlxgw/models/demo/load", "openai", {}),
        ]
        for method, path, protocol, headers in routes:
            r = await gw.call(method, path, headers={**headers, "host": host})
            assert r.status == 421, (path, r.status, r.body)
            error = error_shape(protocol, r.json)
            assert error["type"] == "permission_error" and "allowed_hosts" in error["message"]
            assert "attacker.example" in error["message"]
        assert gw.upstream.requests == []


async def test_loopback_names_and_the_bound_address_are_accepted():
    async with gateway() as gw:
        for host in ["127.0.0.1", f"127.0.0.1:{gw.port}", f"localhost:{gw.port}", "LOCALHOST", "localhost.",
                     f"app.localhost:{gw.port}", f"[::1]:{gw.port}", "127.0.0.2"]:
            r = await gw.call("GET", "/health", headers={"host": host})
            assert r.status == 200, (host, r.body)
        # An address this daemon is not bound to: only a wildcard bind answers for any IP.
        r = await gw.call("GET", "/health", headers={"host": f"192.0.2.7:{gw.port}"})
        assert r.status == 421


async def test_a_wildcard_bind_accepts_ip_literals_and_this_machines_names():
    async with gateway("0.0.0.0") as gw:
        short = socket.gethostname().split(".")[0]
        for host in ["192.0.2.7:8421", "[2001:db8::1]:8421", socket.gethostname(), f"{short}.local:8421", "localhost"]:
            r = await gw.call("GET", "/health", headers={"host": host})
            assert r.status == 200, (host, r.body)
        for host in REBOUND:
            assert (await gw.call("GET", "/health", headers={"host": host})).status == 421


async def test_allowed_hosts_are_picked_up_from_the_config_without_restart():
    async with gateway() as gw:
        headers = {"host": f"mlxgw.lan:{gw.port}"}
        assert (await gw.call("POST", PATHS["openai"], headers=headers)).status == 421
        set_server_option('allowed_hosts = ["mlxgw.lan", "*.example.com"]')

        async def accepted():
            return (await gw.call("POST", PATHS["openai"], headers=headers)).status == 200

        await eventually(accepted, timeout=5)
        assert (await gw.call("GET", "/health", headers={"host": "box.example.com"})).status == 200
        assert (await gw.call("GET", "/health", headers={"host": "example.com.evil"})).status == 421


async def test_ip_addresses_in_allowed_hosts_are_accepted():
    """A proxy on the LAN that keeps the Host it was called by (http://192.0.2.7/ → 127.0.0.1:8421)."""
    async with gateway() as gw:
        set_server_option('allowed_hosts = ["192.0.2.7", "2001:db8::1"]')

        async def accepted():
            return (await gw.call("GET", "/health", headers={"host": "192.0.2.7"})).status == 200

        await eventually(accepted, timeout=5)
        for host in ["192.0.2.7:80", "[2001:db8::1]", "[2001:DB8:0::1]:8080"]:
            r = await gw.call("POST", PATHS["openai"], headers={"host": host})
            assert r.status == 200, (host, r.body)
        assert (await gw.call("GET", "/health", headers={"host": "192.0.2.8"})).status == 421


@pytest.mark.parametrize("origin", [EVIL, "null", "http://localhost:3000"])
async def test_a_browser_origin_that_is_not_allowed_is_refused(origin):
    async with gateway() as gw:
        for method, path, protocol, headers in [
            ("POST", "/v1/chat/completions", "openai", {}),
            ("POST", "/v1/messages", "anthropic", ANTHROPIC),
            ("GET", "/v1/models", "openai", {}),
            ("GET", "/health", "openai", {}),
            ("GET", "/mlxgw/status", "openai", {}),
            ("POST", "/mlxgw/models/demo/unload", "openai", {}),
        ]:
            r = await gw.call(method, path, headers={**headers, "origin": origin})
            assert r.status == 403, (path, r.body)
            error = error_shape(protocol, r.json)
            assert error["type"] == "permission_error" and "allowed_origins" in error["message"]
            assert "access-control-allow-origin" not in r.headers
        # The preflight a page would send first gets no CORS answer either.
        r = await gw.call("OPTIONS", "/v1/chat/completions", headers={
            "origin": origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type"})
        assert r.status == 403 and "access-control-allow-origin" not in r.headers
        assert gw.upstream.requests == []


async def test_the_gateways_own_origin_is_accepted():
    async with gateway() as gw:
        r = await gw.call("POST", PATHS["openai"], headers={"origin": f"http://127.0.0.1:{gw.port}"})
        assert r.status == 200, r.body
        r = await gw.call("GET", "/health", headers={"host": f"localhost:{gw.port}", "origin": f"http://localhost:{gw.port}"})
        assert r.status == 200


async def test_an_allowed_origin_gets_preflights_and_cors_headers():
    app_origin = "http://localhost:3000"
    async with gateway() as gw:
        set_server_option(f'allowed_origins = ["{app_origin}/"]')

        async def preflight():
            r = await gw.call("OPTIONS", "/v1/chat/completions", headers={
                "origin": app_origin, "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type, x-stainless-os"})
            return r if r.status == 204 else None

        r = await eventually(preflight, timeout=5)
        assert r.headers["access-control-allow-origin"] == app_origin
        assert "POST" in r.headers["access-control-allow-methods"]
        allowed = {h.strip() for h in r.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type", "x-stainless-os"} <= allowed
        assert int(r.headers["access-control-max-age"]) > 0
        assert "origin" in r.headers["vary"].lower()

        for stream in (False, True):
            r = await gw.call("POST", PATHS["openai"], body={**CHAT, "stream": stream}, headers={"origin": app_origin})
            assert r.status == 200, r.body
            assert r.headers["access-control-allow-origin"] == app_origin
            exposed = {h.strip() for h in r.headers["access-control-expose-headers"].split(",")}
            assert {"request-id", "x-request-id", "x-mlxgw-backend"} <= exposed
        # Errors are readable by the page too.
        r = await gw.call("POST", PATHS["anthropic"], body={**CHAT, "model": "unmapped"}, headers={**ANTHROPIC, "origin": app_origin})
        assert r.status == 404 and r.headers["access-control-allow-origin"] == app_origin
        # Another origin is still refused, and a program without an Origin gets no CORS headers.
        assert (await gw.call("POST", PATHS["openai"], headers={"origin": EVIL})).status == 403
        r = await gw.call("POST", PATHS["openai"])
        assert r.status == 200 and "access-control-allow-origin" not in r.headers


async def test_the_official_sdks_pass_the_guard_untouched():
    async with gateway() as gw:
        oa = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=10)
        an = anthropic.AsyncAnthropic(base_url=gw.url, api_key="unused", max_retries=0, timeout=10)
        try:
            r = await oa.chat.completions.create(**CHAT)
            assert r.choices[0].message.content
            chunks = [c async for c in await oa.chat.completions.create(**CHAT, stream=True)]
            assert chunks
            assert "gpt-4o" in [m.id for m in (await oa.models.list()).data]
            m = await an.messages.create(**CHAT)
            assert m.content[0].text
            async with an.messages.stream(**CHAT) as s:
                assert (await s.get_final_message()).content
        finally:
            await oa.close()
            await an.close()
