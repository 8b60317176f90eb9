"""One mapping spread over equivalent backends (`backends = [...]`): the load is shared, a sick one
is taken out by its breaker and comes back after its cooldown, round_robin alternates exactly."""

from __future__ import annotations

import asyncio
import collections

from fakes.upstream import FakeOpenAI, Reply
from tests.failover.rig import client, gateway_for
from tests.gateway.helpers import eventually, get

MSG = [{"role": "user", "content": "hi"}]


async def _served_by(oa, n: int = 1) -> list[str]:
    """Which backend served each of `n` requests, one after the other."""
    served = []
    for _ in range(n):
        r = await oa.chat.completions.with_raw_response.create(model="m", messages=MSG)
        served.append(r.headers["x-mlxgw-backend"].split(":")[0])
    return served


async def test_least_outstanding_spreads_concurrent_requests_over_both():
    slow = [Reply(text="slow", delay_s=0.3) for _ in range(40)]
    async with FakeOpenAI(*slow) as mac1, FakeOpenAI(*slow) as mac2:
        backends = {"mac1": ("openai", mac1.url, {}), "mac2": ("openai", mac2.url, {})}
        async with gateway_for(backends, [{"pattern": "m", "backends": ["mac1", "mac2"]}]) as url, client(url) as oa:
            results = await asyncio.gather(
                *[oa.chat.completions.with_raw_response.create(model="m", messages=MSG) for _ in range(40)]
            )
            served = collections.Counter(r.headers["x-mlxgw-backend"] for r in results)
            assert all(r.headers["x-mlxgw-attempts"] == "1" for r in results)
            assert set(served) == {"mac1:m", "mac2:m"}, served
            assert max(served.values()) <= 30, served  # neither over 75 %
            assert len(mac1.requests) + len(mac2.requests) == 40


async def test_round_robin_alternates_exactly():
    async with FakeOpenAI() as a, FakeOpenAI() as b:
        backends = {"a": ("openai", a.url, {}), "b": ("openai", b.url, {})}
        mapping = {"pattern": "m", "backends": ["a", "b"], "balance": "round_robin"}
        async with gateway_for(backends, [mapping]) as url, client(url) as oa:
            assert await _served_by(oa, 6) == ["a", "b"] * 3
            assert len(a.requests) == len(b.requests) == 3


async def test_a_sick_backend_is_taken_out_by_its_breaker_and_comes_back():
    policy = {"max_tries": 1, "breaker_failures": 2, "breaker_cooldown_s": 0.5}
    down = [Reply(reset=True) for _ in range(50)]  # the connection drops at once: a machine gone
    async with FakeOpenAI(*down) as mac1, FakeOpenAI() as mac2:
        backends = {"mac1": ("openai", mac1.url, policy), "mac2": ("openai", mac2.url, policy)}
        mapping = {"pattern": "m", "backends": ["mac1", "mac2"], "fallbacks": ["mac2:other"]}
        async with gateway_for(backends, [mapping]) as url, client(url) as oa:
            # Concurrent requests while mac1 is down: none fails, each that tried mac1 moved on to
            # mac2, the other equivalent, before the mapping's own fallback.
            results = await asyncio.gather(
                *[oa.chat.completions.with_raw_response.create(model="m", messages=MSG) for _ in range(20)]
            )
            assert {r.headers["x-mlxgw-backend"] for r in results} == {"mac2:m"}
            health = (await get(url + "/health")).json
            assert health["backends"]["mac1"]["breaker"]["state"] == "open"
            tried_mac1 = len(mac1.requests)
            assert 2 <= tried_mac1 <= 20

            # Open: every request goes to mac2 without asking mac1.
            assert await _served_by(oa, 6) == ["mac2"] * 6
            assert len(mac1.requests) == tried_mac1

            mac1.replies.clear()  # it is back

            async def cooled() -> bool:
                breaker = (await get(url + "/health")).json["backends"]["mac1"]["breaker"]
                return breaker.get("retry_in_s", 0) == 0

            await eventually(cooled, timeout=5)
            # The first request to pick it is its half-open probe; then it shares the load again.
            served = await _served_by(oa, 6)
            assert served.count("mac1") >= 2, served
            assert len(mac1.requests) > tried_mac1
            health = (await get(url + "/health")).json
            assert health["backends"]["mac1"]["breaker"]["state"] == "closed"


async def test_a_stream_in_flight_counts_until_it_ends():
    slow = Reply(text="one two three four five six", chunk_delay_s=0.2)
    async with FakeOpenAI(slow) as a, FakeOpenAI(slow) as b:
        backends = {"a": ("openai", a.url, {}), "b": ("openai", b.url, {})}
        async with gateway_for(backends, [{"pattern": "m", "backends": ["a", "b"]}]) as url, client(url) as oa:
            stream = await oa.chat.completions.create(model="m", messages=MSG, stream=True)
            first = await anext(stream)  # answering, from `a` (ties start at the first)
            assert first.choices[0].delta is not None and len(a.requests) == 1
            # While its stream is open, `a` has one request outstanding: the others go to `b`.
            assert await _served_by(oa, 3) == ["b"] * 3
            assert [chunk async for chunk in stream]
            # Its stream over, `a` is a pick again.
            served = [(await _served_by(oa))[0] for _ in range(4)]
            assert "a" in served, served
