"""Requests that give up while the local worker is starting: the worker they started is the one the
gateway tracks (never an orphan process nobody will stop), and shutting the gateway down stops it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import aiohttp
import pytest

from tests.gateway.helpers import eventually
from tests.local.helpers import PROMPT, local_gateway, status

ABORTED_REQUESTS = 5
ABORT_AFTER_S = 0.3  # well inside the worker's start (it imports MLX before it is ready)


def worker_children(besides: frozenset[int] = frozenset()) -> list[int]:
    """Live `python -m mlxgw.worker` processes whose parent is this test process (the gateway runs in
    it), but for `besides` (workers of other tests' session-wide backends)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # it exited meanwhile
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == os.getpid() and state != "Z" and b"mlxgw.worker" in cmdline and int(entry.name) not in besides:
            found.append(int(entry.name))
    return found


async def _abandoned_request(session: aiohttp.ClientSession, url: str) -> None:
    body = {"model": "demo", "messages": PROMPT, "max_tokens": 1}
    with contextlib.suppress(TimeoutError):
        async with session.post(url + "/v1/chat/completions", json=body, timeout=aiohttp.ClientTimeout(total=ABORT_AFTER_S)) as r:
            await r.read()


@pytest.mark.parametrize("together", [False, True], ids=["one-after-another", "all-at-once"])
async def test_requests_cancelled_while_the_worker_starts_leave_one_tracked_worker(demo_dir, together):
    others = frozenset(worker_children())
    async with local_gateway(demo_dir) as url:
        async with aiohttp.ClientSession() as session:
            if together:
                await asyncio.gather(*[_abandoned_request(session, url) for _ in range(ABORTED_REQUESTS)])
            else:
                for _ in range(ABORTED_REQUESTS):
                    await _abandoned_request(session, url)
        # The start they began goes on without them, and its worker is the gateway's.
        local = await eventually(lambda: _running(url), timeout=30, interval=0.1)
        assert worker_children(others) == [local["pid"]]
    await eventually(lambda: not worker_children(others), timeout=10)


async def _running(url: str) -> dict | None:
    local = await status(url)
    return local if local.get("running") else None


async def test_a_gateway_closed_while_its_worker_starts_leaves_none(demo_dir):
    others = frozenset(worker_children())
    async with local_gateway(demo_dir) as url, aiohttp.ClientSession() as session:
        await _abandoned_request(session, url)
        assert worker_children(others)  # still starting as the gateway closes
    await eventually(lambda: not worker_children(others), timeout=10)
