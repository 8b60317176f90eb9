"""The load generator: N concurrent aiohttp clients sending one request shape, for a duration or a
count, timing each request's end and first body chunk."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field

import aiohttp

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "bench"}
OPENAI_HEADERS = {"authorization": "Bearer bench"}


def openai_body(model: str, *, stream: bool, max_tokens: int = 64, prompt: str = "Say hello", **extra) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "stream": stream}
    return {**body, **extra}


def anthropic_body(model: str, *, stream: bool, max_tokens: int = 64, prompt: str = "Say hello", **extra) -> dict:
    body = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    return {**body, **extra}


@dataclass
class Sample:
    started: float
    latency: float
    ttfb: float | None  # first body chunk
    ok: bool
    error: str | None = None
    body: bytes = b""


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if not s.ok)

    @property
    def rps(self) -> float:
        return len(self.ok) / self.wall_s if self.wall_s else 0.0

    def latency_ms(self, q: float) -> float | None:
        return percentile([s.latency for s in self.ok], q)

    def ttfb_ms(self, q: float) -> float | None:
        return percentile([s.ttfb for s in self.ok if s.ttfb is not None], q)

    def error_kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.samples:
            if not s.ok:
                out[s.error or "?"] = out.get(s.error or "?", 0) + 1
        return out


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) in milliseconds, nearest rank; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k] * 1000


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def complete(body: bytes, stream: bool) -> bool:
    """A stream that ended properly ([DONE] or message_stop), or a whole JSON answer."""
    if stream:
        tail = body[-600:]
        return b"data: [DONE]" in tail or b"event: message_stop" in tail
    return body[:1] == b"{" and b'"error"' not in body[:40]


async def one(session: aiohttp.ClientSession, url: str, payload: bytes, headers: dict, stream: bool,
              timeout_s: float, keep_body: bool = False) -> Sample:
    started = time.perf_counter()
    ttfb = None
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(timeout_s), session.post(url, data=payload, headers=headers) as r:
            async for chunk in r.content.iter_any():
                if ttfb is None:
                    ttfb = time.perf_counter() - started
                chunks.append(chunk)
            body = b"".join(chunks)
            ok = r.status == 200 and complete(body, stream)
            error = None if ok else (f"http {r.status}" if r.status != 200 else "incomplete")
    except TimeoutError:
        body, ok, error = b"".join(chunks), False, "timeout"
    except aiohttp.ClientError as exc:
        body, ok, error = b"".join(chunks), False, type(exc).__name__
    return Sample(started, time.perf_counter() - started, ttfb, ok, error, body if keep_body or not ok else b"")


async def run_load(url: str, body: dict, *, headers: dict | None = None, concurrency: int = 1,
                   duration_s: float | None = None, requests: int | None = None, warmup: int = 0,
                   timeout_s: float = 60.0, session: aiohttp.ClientSession | None = None, keep_body: bool = False,
                   on_sample=None) -> Run:
    """`concurrency` clients in a loop until `duration_s` passed or `requests` were sent."""
    assert duration_s or requests, "bound the run: a duration or a request count"
    payload = json.dumps(body).encode()
    headers = {"content-type": "application/json", **(headers or {})}
    stream = bool(body.get("stream"))
    own = session is None
    if own:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None))
    run = Run()
    try:
        for _ in range(warmup):
            await one(session, url, payload, headers, stream, timeout_s)
        sent = 0
        start = time.perf_counter()
        stop_at = start + duration_s if duration_s else float("inf")

        async def client() -> None:
            nonlocal sent
            while time.perf_counter() < stop_at and (requests is None or sent < requests):
                sent += 1
                sample = await one(session, url, payload, headers, stream, timeout_s, keep_body)
                run.samples.append(sample)
                if on_sample is not None:
                    on_sample(sample)

        await asyncio.gather(*(client() for _ in range(concurrency)))
        run.wall_s = time.perf_counter() - start
    finally:
        if own:
            await session.close()
    return run
