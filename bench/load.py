"""`scripts/bench load` (and the slow test tests/load): many concurrent streaming connections
through mlxgw to a fake upstream for a while; every request must complete. Reports the daemon's peak
memory and open descriptors."""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import procs
from bench.client import OPENAI_HEADERS, openai_body, run_load
from bench.report import console, save, table

MB = 1024 * 1024


def raise_fd_limit(needed: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to `needed` (within the hard limit); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def run(connections: int = 500, duration_s: float = 30.0, *, words: int = 10, chunk_delay_s: float = 0.05) -> dict:
    limits = raise_fd_limit(4 * connections + 1024)
    with tempfile.TemporaryDirectory(prefix="mlxgw-bench-") as tmp:
        log_dir = Path(tmp)
        with procs.upstream(log_dir, words=words, chunk_delay_s=chunk_delay_s) as up:
            config = {"backends": {"up": {"type": "openai", "base_url": up["openai"]}},
                      "mappings": [{"pattern": "bench-*", "backend": "up"}]}
            with procs.gateway(log_dir, **config) as gw:
                idle = procs.proc_status(gw.proc.pid)
                peak = {"VmRSS": idle.get("VmRSS", 0), "fds": idle.get("fds", 0)}
                done = 0

                def seen(_sample) -> None:
                    nonlocal done
                    done += 1

                async def sample_daemon() -> None:
                    started = time.monotonic()
                    while True:
                        now = procs.proc_status(gw.proc.pid)
                        for k in ("VmRSS", "fds"):
                            peak[k] = max(peak[k], now.get(k, 0))
                        console.print(f"  {time.monotonic() - started:5.1f}s  {done} requests done, daemon RSS "
                                      f"{now.get('VmRSS', 0) / MB:.0f} MB, {now.get('fds', 0)} fds")
                        await asyncio.sleep(2.0)

                sampler = asyncio.create_task(sample_daemon())
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                                timeout=aiohttp.ClientTimeout(total=None))
                try:
                    result = await run_load(gw.url + "/v1/chat/completions", openai_body("bench-model", stream=True),
                                            headers=OPENAI_HEADERS, concurrency=connections, duration_s=duration_s,
                                            timeout_s=120, session=session, on_sample=seen)
                finally:
                    sampler.cancel()
                    await asyncio.gather(sampler, return_exceptions=True)
                    await session.close()
                after = procs.proc_status(gw.proc.pid)
    out = {
        "settings": {"connections": connections, "duration_s": duration_s, "upstream_words": words,
                     "upstream_chunk_delay_s": chunk_delay_s, "nofile_limit": list(limits)},
        "requests": len(result.samples), "errors": result.errors, "error_kinds": result.error_kinds(),
        "rps": result.rps, "p50_ms": result.latency_ms(50), "p99_ms": result.latency_ms(99),
        "ttfb_p50_ms": result.ttfb_ms(50), "ttfb_p99_ms": result.ttfb_ms(99),
        "daemon_rss_idle_mb": idle.get("VmRSS", 0) / MB, "daemon_rss_peak_mb": max(peak["VmRSS"], after.get("VmHWM", 0)) / MB,
        "daemon_rss_after_mb": after.get("VmRSS", 0) / MB, "daemon_fds_idle": idle.get("fds"),
        "daemon_fds_peak": peak["fds"], "daemon_fds_after": after.get("fds"),
    }
    table(f"load: {connections} concurrent streams through mlxgw for {duration_s:g} s "
          f"(upstream: {words + 2} frames, {chunk_delay_s * 1000:g} ms apart)",
          ["requests", "errors", "req/s", "p50 ms", "p99 ms", "first chunk p99 ms", "daemon RSS idle / peak / after (MB)", "daemon fds peak"],
          [[out["requests"], out["errors"], out["rps"], out["p50_ms"], out["p99_ms"], out["ttfb_p99_ms"],
            f"{out['daemon_rss_idle_mb']:.0f} / {out['daemon_rss_peak_mb']:.0f} / {out['daemon_rss_after_mb']:.0f}",
            out["daemon_fds_peak"]]])
    return out


async def main(args) -> None:
    save("load", await run(args.connections, args.duration))
