"""The gateway as users run it — `mlxgw serve` in a process of its own — so that its descriptors and
memory can be read from /proc, and its request log from its SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from bench import procs

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


@contextlib.asynccontextmanager
async def daemon(log_dir: Path, **config) -> AsyncIterator[procs.Gateway]:
    """`mlxgw serve` with a fresh home holding `config` (bench.procs.write_config's keywords).
    Starting and stopping block, so they run off the event loop the fakes serve on."""
    cm = procs.gateway(log_dir, **config)
    gw = await asyncio.to_thread(cm.__enter__)
    try:
        yield gw
    finally:
        await asyncio.to_thread(cm.__exit__, None, None, None)


def sockets(pid: int) -> int:
    n = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            n += str(fd.readlink()).startswith("socket:")
    return n


def rss_mb(pid: int) -> float:
    return procs.proc_status(pid).get("VmRSS", 0) / (1024 * 1024)


def log_rows(home: Path, request_ids: list[str]) -> dict[str, int]:
    """How many request-log rows each request id has."""
    db = sqlite3.connect(f"file:{home / 'mlxgw.db'}?mode=ro", uri=True, timeout=5)
    try:
        marks = ",".join("?" * len(request_ids))
        rows = db.execute(f"SELECT request_id, COUNT(*) FROM requestlog WHERE request_id IN ({marks}) GROUP BY request_id",
                          request_ids).fetchall()
    finally:
        db.close()
    return dict(rows)


async def wait_rows(home: Path, request_ids: list[str], timeout: float = 5.0) -> dict[str, int]:
    """Poll (bounded) until every id has its row; the log is flushed every 0.5 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rows = log_rows(home, request_ids)
        if len(rows) == len(set(request_ids)) or loop.time() > deadline:
            return rows
        await asyncio.sleep(0.1)


async def post(session: aiohttp.ClientSession, url: str, protocol: str, body: dict, timeout: float) -> tuple[int, dict, bytes, float]:
    """One request; (status, headers, body, seconds). A client-side timeout shows as status 0."""
    path = "/v1/chat/completions" if protocol == "openai" else "/v1/messages"
    headers = {} if protocol == "openai" else ANTHROPIC_HEADERS
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(timeout), session.post(url + path, json=body, headers=headers) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read(), loop.time() - started
    except TimeoutError:
        return 0, {}, b"", loop.time() - started
