"""`scripts/bench failover`: how long a local failure delays the answer a fallback then serves.

Two failures, each against the fallback's own first-byte time measured directly:
- a mapping to a local model that does not exist (the worker fails the load; the request moves on);
- a worker killed (SIGKILL) while a request waits on it: the worker is stopped (SIGSTOP) first so the
  request is surely waiting, then killed; the clock starts at the kill.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import procs
from bench.client import OPENAI_HEADERS, one, openai_body
from bench.report import console, save, table, target, targets_table

MISSING = "/nonexistent/mlxgw-bench/missing-model"


def _fb(up: dict) -> dict:
    return {"fb": {"type": "openai", "base_url": up["openai"]}}


async def _ttfbs(session, url: str, model: str, n: int) -> list[dict]:
    out = []
    payload = openai_body(model, stream=True)
    for _ in range(n):
        s = await one(session, url + "/v1/chat/completions", json.dumps(payload).encode(),
                      {"content-type": "application/json", **OPENAI_HEADERS}, True, 60)
        out.append({"ttfb_ms": (s.ttfb or 0) * 1000, "ok": s.ok, "error": s.error})
    return out


async def _served_by(session, url: str, model: str) -> str | None:
    async with session.post(url + "/v1/chat/completions", json=openai_body(model, stream=False, max_tokens=8)) as r:
        await r.read()
        return r.headers.get("x-mlxgw-backend")


def _median(rows: list[dict]) -> float | None:
    vals = [r["ttfb_ms"] for r in rows if r["ok"]]
    return statistics.median(vals) if vals else None


async def _missing(log_dir: Path, up: dict, trials: int, local_policy: dict) -> dict:
    config = {"local": local_policy, "backends": _fb(up),
              "mappings": [{"pattern": "missing", "backend": "local", "model": MISSING, "fallbacks": ["fb:bench-model"]}]}
    with procs.gateway(log_dir, **config) as gw:
        async with aiohttp.ClientSession() as session:
            first = await _ttfbs(session, gw.url, "missing", 1)  # starts the worker
            rows = await _ttfbs(session, gw.url, "missing", trials)
            served = await _served_by(session, gw.url, "missing")
    return {"first_request": first[0], "requests": rows, "served_by": served}


async def _killed(log_dir: Path, up: dict, trials: int, model_dir: Path) -> dict:
    # A kill per trial opens the local breaker after a few trials (failure-rate rule); a short
    # cooldown lets the warm-up between trials reach the restarted worker.
    config = {"local": {"max_tries": 1, "breaker_cooldown_s": 1}, "backends": _fb(up),
              "mappings": [{"pattern": "demo", "backend": "local", "model": str(model_dir), "fallbacks": ["fb:bench-model"]}]}
    rows = []
    with procs.gateway(log_dir, **config) as gw:
        async with aiohttp.ClientSession() as session:
            for i in range(trials):
                console.print(f"  killed worker: trial {i + 1}/{trials}")
                for _ in range(60):  # bounded: the restarted worker answers within a few seconds
                    if (await _served_by(session, gw.url, "demo") or "").startswith("local:"):
                        break
                    await asyncio.sleep(0.25)
                pid = None
                for _ in range(40):
                    status = await procs.get_json(session, gw.url + "/mlxgw/status")
                    pid = (status.get("local") or {}).get("pid")
                    if pid:
                        break
                    console.print(f"    worker not running yet: {status.get('local')}")
                    await asyncio.sleep(0.25)
                if not pid:
                    raise RuntimeError(f"the local worker did not come back: {status}")
                os.kill(pid, signal.SIGSTOP)
                waiting = asyncio.create_task(one(session, gw.url + "/v1/chat/completions",
                                                  json.dumps(openai_body("demo", stream=True)).encode(),
                                                  {"content-type": "application/json", **OPENAI_HEADERS}, True, 60,
                                                  keep_body=True))
                await asyncio.sleep(0.3)
                killed_at = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                sample = await waiting
                first_byte_at = sample.started + (sample.ttfb or 0)
                rows.append({"ttfb_ms": (first_byte_at - killed_at) * 1000, "ok": sample.ok and b"word0" in sample.body,
                             "error": sample.error})
    return {"requests": rows}


async def run(trials: int = 10) -> dict:
    from mlxgw.worker.demo import build_demo_model

    with tempfile.TemporaryDirectory(prefix="mlxgw-bench-") as tmp:
        log_dir = Path(tmp)
        model_dir = build_demo_model(log_dir / "demo")
        with procs.upstream(log_dir) as up:
            async with aiohttp.ClientSession() as session:
                console.print("the fallback, directly")
                direct = await _ttfbs(session, up["openai"].removesuffix("/v1"), "bench-model", trials * 3)
            console.print("missing local model, default policy (max_tries 2, breaker 5 failures)")
            missing_default = await _missing(log_dir, up, trials, {})
            console.print("missing local model, max_tries 1, breaker off")
            missing_once = await _missing(log_dir, up, trials, {"max_tries": 1, "breaker_failures": 1000000})
            console.print("killed worker (max_tries 1 for local: a retry would restart the worker, not fail over)")
            killed = await _killed(log_dir, up, trials, model_dir)
    base = _median(direct)
    results = {"direct": {"requests": direct, "median_ttfb_ms": base}}
    def worst(rows: list[dict]) -> float | None:
        return max((r["ttfb_ms"] for r in rows if r["ok"]), default=None)

    rows = [["fallback directly", base, worst(direct), "—", f"{sum(r['ok'] for r in direct)}/{len(direct)}", ""]]
    for name, label, res in (("missing_default", "missing model, default policy", missing_default),
                             ("missing_max_tries_1", "missing model, max_tries 1", missing_once),
                             ("killed_worker", "worker SIGKILLed, max_tries 1", killed)):
        med = _median(res["requests"])
        res["median_ttfb_ms"] = med
        res["added_ms"] = med - base if med is not None and base is not None else None
        results[name] = res
        note = ""
        if "first_request" in res:
            note = f"first request (starts the worker): {res['first_request']['ttfb_ms']:.1f} ms; served by {res['served_by']}"
        rows.append([label, med, worst(res["requests"]), res["added_ms"], f"{sum(r['ok'] for r in res['requests'])}/{len(res['requests'])}", note])
    table("failover: first byte (ms) — from the request, or for the killed worker from the kill",
          ["case", "median first byte", "worst", "added vs direct (median)", "ok", ""], rows)
    checks = [target(f"failover adds ({label})", "< 50 ms", results[k]["added_ms"],
                     None if results[k]["added_ms"] is None else results[k]["added_ms"] < 50)
              for k, label in (("missing_default", "missing model, defaults"), ("missing_max_tries_1", "missing model, max_tries 1"),
                               ("killed_worker", "killed worker"))]
    targets_table(checks)
    return {"settings": {"trials": trials}, **results, "targets": checks}


async def main(args) -> None:
    save("failover", await run(args.trials))
