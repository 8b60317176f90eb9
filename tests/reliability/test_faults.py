"""Every upstream fault under 50 concurrent streaming clients (half OpenAI, half Anthropic) through
a real `mlxgw serve` with a fallback: each request completes or ends in a well-formed protocol error,
none outlives the deadline, each leaves exactly one request-log row, and the daemon's sockets and
memory come back to where they were."""

from __future__ import annotations

import asyncio
import collections
import tempfile
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from fakes.upstream import FakeAnthropic, FakeOpenAI, Reply, refused_url
from tests.reliability.daemon import daemon, post, rss_mb, sockets, wait_rows
from tests.reliability.sse import judge

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLIENTS = 50
DEADLINE_S = 6.0
POLICY = {"connect_timeout_s": 1, "first_byte_timeout_s": 1, "idle_timeout_s": 1, "max_tries": 2,
          "breaker_failures": 1_000_000, "breaker_cooldown_s": 0.5}

# fault -> (the primary's reply to every try, what every client may see). A fault that comes after
# content was streamed cannot fail over: it ends in the protocol's error frame (or, when the fault
# reaches the gateway before the first content, the fallback answers).
FAULTS = {
    "refuse": (None, {"ok"}),
    "hang": (Reply(hang=True), {"ok"}),
    "reset": (Reply(reset=True), {"ok"}),
    "reset-mid-body": (Reply(die_after_chunks=1), {"ok"}),  # after the role chunk, before content
    "429-retry-after-1s": (Reply(status=429, retry_after=1), {"ok"}),
    "429-retry-after-60s": (Reply(status=429, retry_after=60), {"ok"}),
    "500": (Reply(status=500), {"ok"}),
    "529": (Reply(status=529), {"ok"}),
    "malformed": (Reply(malformed=True), {"error_event", "ok"}),
    "dies-after-3-chunks": (Reply(die_after_chunks=3), {"error_event", "ok"}),
}


class Rig:
    def __init__(self, gw, primary: FakeOpenAI, fallback: FakeAnthropic) -> None:
        self.gw, self.primary, self.fallback = gw, primary, fallback
        self.baseline_sockets = 0
        self.baseline_rss = 0.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig():
    with tempfile.TemporaryDirectory(prefix="mlxgw-reliability-") as tmp:
        async with FakeOpenAI() as primary, FakeAnthropic(Reply(text="from the fallback")) as fallback:
            fallback.replies.clear()  # every request: the default answer
            fallback.default_text = "from the fallback"
            config = {
                "server": {"request_deadline_s": DEADLINE_S},
                "backends": {
                    "p": {"type": "openai", "base_url": primary.url, **POLICY},
                    "r": {"type": "openai", "base_url": refused_url("/v1"), **POLICY},
                    "fb": {"type": "anthropic", "base_url": fallback.url, **POLICY},
                },
                "mappings": [
                    {"pattern": "fault", "backend": "p", "fallbacks": ["fb:claude-fb"]},
                    {"pattern": "refuse", "backend": "r", "fallbacks": ["fb:claude-fb"]},
                ],
            }
            async with daemon(Path(tmp), **config) as gw:
                rig = Rig(gw, primary, fallback)
                # Idle, the daemon holds its listening socket and little else. Traffic leaves at
                # most one kept-alive connection per concurrent client in each upstream's pool:
                # that is the ceiling every round must come back under.
                idle = await _settled_sockets(gw.proc.pid, None)
                rig.baseline_sockets = idle + 2 * CLIENTS
                await _round(rig, "fault", None)
                await _round(rig, "refuse", None)
                rig.baseline_rss = rss_mb(gw.proc.pid)
                yield rig
                primary.replies.clear()


async def _settled_sockets(pid: int, ceiling: int | None, timeout: float = 5.0) -> int:
    """The daemon's socket count once closing connections are gone (bounded wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        now = sockets(pid)
        if (ceiling is not None and now <= ceiling) or (ceiling is None and now == last):
            return now
        last = now
        await asyncio.sleep(0.25)
    return sockets(pid)


async def _close_breaker(rig: Rig, model: str) -> None:
    """A round of failures opens the primary's breaker (its failure-rate rule); after the cooldown
    one good probe closes it, so the next round meets the fault itself, not an open circuit."""
    await asyncio.sleep(POLICY["breaker_cooldown_s"] + 0.1)
    rig.primary.replies.clear()
    async with aiohttp.ClientSession() as session:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        status, *_ = await post(session, rig.gw.url, "openai", body, DEADLINE_S + 3)
    assert status == 200


async def _round(rig: Rig, model: str, fault: Reply | None) -> list[tuple[str, int, dict, bytes, float]]:
    if model == "fault":
        await _close_breaker(rig, model)
    if fault is not None:
        rig.primary.replies.extend([fault] * (CLIENTS * POLICY["max_tries"]))
    bodies = {
        "openai": {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        "anthropic": {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}], "stream": True},
    }
    protocols = ["openai", "anthropic"] * (CLIENTS // 2)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        results = await asyncio.gather(
            *(post(session, rig.gw.url, p, bodies[p], DEADLINE_S + 3) for p in protocols)
        )
    rig.primary.replies.clear()
    return [(p, *r) for p, r in zip(protocols, results, strict=True)]


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_under_concurrent_streams(rig: Rig, fault: str):
    reply, expected = FAULTS[fault]
    model = "refuse" if fault == "refuse" else "fault"
    results = await _round(rig, model, reply)

    verdicts = collections.Counter()
    problems = []
    for protocol, status, _headers, body, elapsed in results:
        verdict = "timeout" if status == 0 else judge(protocol, status, body)
        verdicts[verdict] += 1
        if verdict not in expected:
            problems.append(f"{protocol}: {verdict} (HTTP {status}) {body[-400:]!r}")
        assert elapsed < DEADLINE_S + 1, f"{protocol} request took {elapsed:.1f} s, past the {DEADLINE_S} s deadline"
    assert not problems, f"{fault}: {dict(verdicts)}; first problems: {problems[:3]}"
    if "error_event" in expected:
        served = collections.Counter(h.get("x-mlxgw-backend") for _, _, h, _, _ in results)
        assert verdicts["error_event"], f"{fault}: no stream saw the fault: {dict(verdicts)}, served by {dict(served)}"

    ids = [headers.get("x-request-id") for _, _, headers, _, _ in results]
    assert all(ids), "every answer carries its request id"
    rows = await wait_rows(rig.gw.home, ids)
    assert rows == dict.fromkeys(ids, 1), f"request log rows per request: {collections.Counter(rows.values())}, missing {len(set(ids) - rows.keys())}"
    await asyncio.sleep(0.6)  # one more flush: still exactly one row each
    assert (await wait_rows(rig.gw.home, ids)) == dict.fromkeys(ids, 1)

    ceiling = rig.baseline_sockets + 10
    settled = await _settled_sockets(rig.gw.proc.pid, ceiling)
    assert settled <= ceiling, f"daemon holds {settled} sockets after {fault}, ceiling {ceiling}"


async def test_memory_back_near_baseline(rig: Rig):
    # Runs after the fault rounds (file order): they must not have left the daemon much bigger.
    await _round(rig, "fault", None)
    grown = rss_mb(rig.gw.proc.pid) - rig.baseline_rss
    assert grown < 40, f"daemon RSS grew {grown:.0f} MB over the fault rounds"
    assert await _settled_sockets(rig.gw.proc.pid, rig.baseline_sockets + 10) <= rig.baseline_sockets + 10
