"""Circuit breakers: open -> instant skip -> one half-open probe among concurrent requests -> closed."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from fakes.upstream import FakeOpenAI, Reply
from mlxgw.canonical import ChatRequest, Message, TextPart
from mlxgw.dispatch.breaker import Breaker
from mlxgw.errors import UpstreamError
from mlxgw.server.appkeys import DISPATCHER
from tests.failover.rig import client, gateway_for, post, write_config
from tests.gateway.helpers import start_gateway

MSG = [{"role": "user", "content": "hi"}]


async def test_breaker_opens_skips_probes_once_and_closes():
    policy = {"max_tries": 1, "breaker_failures": 2, "breaker_cooldown_s": 0.5}
    replies = [Reply(status=500), Reply(status=500), Reply(text="probe", delay_s=0.3), Reply(text="closed again")]
    async with FakeOpenAI(*replies) as p, FakeOpenAI() as b:
        backends = {"p": ("openai", p.url, policy), "b": ("openai", b.url, {})}
        async with gateway_for(backends, [{"pattern": "m", "backend": "p", "fallbacks": ["b"]}]) as url:
            oa = client(url)
            for _ in range(2):
                r = await oa.chat.completions.with_raw_response.create(model="m", messages=MSG)
                assert r.headers["x-mlxgw-backend"] == "b:m"
            async with aiohttp.ClientSession() as s, s.get(url + "/health") as h:
                assert (await h.json())["backends"]["p"]["breaker"]["state"] == "open"

            # Open: p is skipped without being asked.
            r = await oa.chat.completions.with_raw_response.create(model="m", messages=MSG)
            assert r.headers["x-mlxgw-backend"] == "b:m"
            assert len(p.requests) == 2

            await asyncio.sleep(0.6)  # cooldown over: half-open
            results = await asyncio.gather(
                *[oa.chat.completions.with_raw_response.create(model="m", messages=MSG) for _ in range(10)]
            )
            served = [r.headers["x-mlxgw-backend"] for r in results]
            assert served.count("p:m") == 1, served  # exactly one probe
            assert len(p.requests) == 3

            r = await oa.chat.completions.create(model="m", messages=MSG)
            assert r.choices[0].message.content == "closed again"


async def test_open_circuit_adds_well_under_a_millisecond():
    policy = {"max_tries": 1, "breaker_failures": 1, "breaker_cooldown_s": 60}
    async with FakeOpenAI(Reply(status=500)) as p:
        write_config({"p": ("openai", p.url, policy)}, [{"pattern": "m", "backend": "p"}])
        server, url = await start_gateway()
        try:
            await post(url)  # one failure opens the circuit
            dispatcher = server.app[DISPATCHER]
            request = ChatRequest(model="m", messages=[Message("user", [TextPart("hi")])])
            n = 200
            start = time.perf_counter()
            for _ in range(n):
                with pytest.raises(UpstreamError, match="circuit is open"):
                    await dispatcher.open(request, [])
            per_request = (time.perf_counter() - start) / n
            assert per_request < 0.001, per_request
            assert len(p.requests) == 1
        finally:
            await server.close()


def test_breaker_unit_rules():
    now = [0.0]
    b = Breaker(failures=3, cooldown_s=10, clock=lambda: now[0])
    for _ in range(2):
        b.failed(b.allow())
    assert b.state == "closed"
    permit = b.allow()
    b.released(permit)  # a client error: no verdict
    assert b.state == "closed"
    b.failed(b.allow())
    assert b.state == "open" and b.allow() is None
    now[0] = 10.0
    probe = b.allow()
    assert probe is not None and probe.probe and b.allow() is None  # one probe only
    b.failed(probe)
    assert b.state == "open"
    now[0] = 15.0
    assert b.allow() is None  # re-opened: a fresh cooldown from the failed probe
    now[0] = 20.0
    probe = b.allow()
    b.succeeded(probe)
    assert b.state == "closed" and b.allow() is not None


def test_failure_rate_opens_breaker():
    b = Breaker(failures=100, cooldown_s=10)
    for i in range(20):
        permit = b.allow()
        if permit is None:
            break
        (b.failed if i % 2 else b.succeeded)(permit)
    assert b.state == "open"
    assert json.dumps(b.snapshot())
