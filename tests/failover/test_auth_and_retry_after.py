"""An upstream refusing mlxgw's own key fails over; an absurd Retry-After still gets a protocol-shaped error."""

from __future__ import annotations

import json

import aiohttp

from fakes.upstream import FakeOpenAI, Reply
from tests.failover.rig import gateway_for

MSG = [{"role": "user", "content": "hi"}]


async def _post(url: str) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession() as s, s.post(
        url + "/v1/chat/completions", json={"model": "m", "messages": MSG}
    ) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


async def test_upstream_auth_failure_moves_on_to_the_fallback():
    async with FakeOpenAI(require_key="the-right-key") as primary, FakeOpenAI(Reply(text="backup")) as backup:
        backends = {"p": ("openai", primary.url, {}), "b": ("openai", backup.url, {})}
        async with gateway_for(backends, [{"pattern": "m", "backend": "p", "fallbacks": ["b"]}]) as url:
            status, _, body = await _post(url)
            assert len(backup.requests) == 1, body
            assert status == 200
            assert json.loads(body)["choices"][0]["message"]["content"] == "backup"
            assert len(primary.requests) == 1  # refused credentials are not retried on the same backend


async def test_infinite_retry_after_still_gets_a_protocol_shaped_error():
    async with FakeOpenAI(*[Reply(status=429, headers={"retry-after": "1e999"})] * 3) as primary:
        async with gateway_for({"p": ("openai", primary.url, {})}, [{"pattern": "m", "backend": "p"}]) as url:
            status, headers, body = await _post(url)
            assert status == 429, body
            assert "error" in json.loads(body)


async def test_a_single_try_leaves_the_retry_decision_to_the_sdk():
    # Asked to wait longer than the gateway will, it tried once: the SDK may still retry later.
    async with FakeOpenAI(Reply(status=429, retry_after=30)) as primary:
        async with gateway_for({"p": ("openai", primary.url, {})}, [{"pattern": "m", "backend": "p"}]) as url:
            status, headers, _ = await _post(url)
            assert status == 429 and headers["retry-after"] == "30"
            assert "x-should-retry" not in headers
