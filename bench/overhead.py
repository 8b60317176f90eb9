"""`scripts/bench overhead`: what mlxgw adds in front of an upstream that answers at once.

The same load goes straight to a fake OpenAI upstream and through mlxgw: passthrough (OpenAI client,
OpenAI upstream) and translated (Anthropic client, the same OpenAI upstream), whole and streamed, by
1 and by 32 concurrent clients. With litellm importable (the `bench` extra) its proxy is measured
against the same upstream too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import pstats
import sys
import tempfile
from pathlib import Path

from rich.progress import Progress

from bench import procs
from bench.client import ANTHROPIC_HEADERS, OPENAI_HEADERS, anthropic_body, openai_body, run_load
from bench.report import console, save, table, target, targets_table

MODEL = "bench-model"
LITELLM_KEY = "sk-bench"
LITELLM_OPENAI_HEADERS = {**OPENAI_HEADERS, "authorization": f"Bearer {LITELLM_KEY}"}
LITELLM_ANTHROPIC_HEADERS = {**ANTHROPIC_HEADERS, "x-api-key": LITELLM_KEY}


def _cell(run) -> dict:
    return {
        "requests": len(run.samples), "errors": run.errors, "error_kinds": run.error_kinds(), "wall_s": round(run.wall_s, 3),
        "rps": run.rps, "p50_ms": run.latency_ms(50), "p99_ms": run.latency_ms(99),
        "ttfb_p50_ms": run.ttfb_ms(50), "ttfb_p99_ms": run.ttfb_ms(99),
    }


@contextlib.contextmanager
def _litellm(log_dir: Path, upstream_url: str):
    port = procs.free_port()
    cfg = log_dir / "litellm.yaml"
    cfg.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream_url}\n"
        "      api_key: bench\n"
    )
    # The proxy refuses to start without a master key; clients then present it like any API key.
    proc = procs.spawn("litellm", [sys.executable, "-m", "litellm.proxy.proxy_cli", "--config", str(cfg),
                                   "--host", "127.0.0.1", "--port", str(port)], log_dir=log_dir,
                       env={"LITELLM_MASTER_KEY": LITELLM_KEY})
    try:
        procs.wait_http(proc, f"http://127.0.0.1:{port}/health/liveliness", 120)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


async def run(duration_s: float = 4.0, concurrencies: tuple[int, ...] = (1, 32), profile: bool = False) -> dict:
    have_litellm = importlib.util.find_spec("litellm") is not None
    with tempfile.TemporaryDirectory(prefix="mlxgw-bench-") as tmp:
        log_dir = Path(tmp)
        prof_path = log_dir / "mlxgw.prof" if profile else None
        with procs.upstream(log_dir) as up:
            config = {
                "backends": {"up": {"type": "openai", "base_url": up["openai"]}},
                "mappings": [{"pattern": "bench-*", "backend": "up"}],
            }
            with procs.gateway(log_dir, profile=prof_path, **config) as gw, contextlib.ExitStack() as stack:
                litellm_url = stack.enter_context(_litellm(log_dir, up["openai"])) if have_litellm else None
                targets = {
                    "direct": (up["openai"] + "/chat/completions", openai_body, OPENAI_HEADERS),
                    "passthrough": (gw.url + "/v1/chat/completions", openai_body, OPENAI_HEADERS),
                    "translated": (gw.url + "/v1/messages", anthropic_body, ANTHROPIC_HEADERS),
                }
                if litellm_url:
                    targets["litellm passthrough"] = (litellm_url + "/v1/chat/completions", openai_body, LITELLM_OPENAI_HEADERS)
                    targets["litellm translated"] = (litellm_url + "/v1/messages", anthropic_body, LITELLM_ANTHROPIC_HEADERS)
                cells: dict[str, dict] = {}
                plan = [(stream, c, name) for stream in (False, True) for c in concurrencies for name in targets]
                with Progress(console=console, transient=True) as bar:
                    task = bar.add_task("overhead", total=len(plan))
                    for stream, c, name in plan:
                        bar.update(task, description=f"{name:<20} {'stream' if stream else 'whole':<6} c={c}")
                        url, make_body, headers = targets[name]
                        result = await run_load(url, make_body(MODEL, stream=stream), headers=headers, concurrency=c,
                                                duration_s=duration_s, warmup=3)
                        cells[f"{name}|{'stream' if stream else 'whole'}|{c}"] = _cell(result)
                        bar.advance(task)
        hot = _hot_spots(prof_path) if prof_path and prof_path.exists() else None
    if not have_litellm:
        console.print("litellm is not importable (pip install -e '.\\[bench]'): LiteLLM comparison skipped")
    return _report(cells, concurrencies, have_litellm, hot, duration_s)


def _hot_spots(path: Path, n: int = 25) -> list[str]:
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime")
    rows = []
    for func, (_cc, nc, tt, ct, _callers) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:n]:
        filename, line, name = func
        rows.append(f"{tt:8.3f}s self {ct:8.3f}s cum {nc:>9} calls  {name} ({Path(filename).name}:{line})")
    return rows


def _report(cells: dict, concurrencies, have_litellm: bool, hot: list[str] | None, duration_s: float) -> dict:
    rows = []
    derived: dict[str, dict] = {}
    for key, cell in cells.items():
        name, mode, c = key.split("|")
        base = cells.get(f"direct|{mode}|{c}")
        added = ratio = None
        if name != "direct" and base and cell["p50_ms"] is not None and base["p50_ms"] is not None:
            added = cell["p50_ms"] - base["p50_ms"]
            ratio = cell["rps"] / base["rps"] if base["rps"] else None
        derived[key] = {"added_p50_ms": added, "throughput_vs_direct": ratio}
        rows.append([name, mode, c, cell["rps"], cell["p50_ms"], cell["p99_ms"], cell["ttfb_p50_ms"], added,
                     f"{ratio:.2f}x" if ratio else "—", f"{cell['errors']}/{cell['requests']}"])
    table("overhead: a fake upstream that answers at once (latencies in ms)",
          ["path", "mode", "clients", "req/s", "p50", "p99", "first chunk p50", "added p50", "vs direct", "errors"], rows)
    if have_litellm:
        lrows = []
        for key, cell in cells.items():
            name, mode, c = key.split("|")
            if not name.startswith("litellm"):
                continue
            ours = cells[f"{name.split()[1]}|{mode}|{c}"]
            lrows.append([name.split()[1], mode, c, ours["rps"] / cell["rps"] if cell["rps"] else None,
                          ours["p50_ms"] / cell["p50_ms"] if cell["p50_ms"] else None])
        table("mlxgw / LiteLLM", ["path", "mode", "clients", "throughput ratio", "p50 latency ratio"], lrows)
    c_lo, c_hi = min(concurrencies), max(concurrencies)
    checks = []
    for mode in ("whole", "stream"):
        added = derived.get(f"passthrough|{mode}|{c_lo}", {}).get("added_p50_ms")
        checks.append(target(f"passthrough added p50, {mode}, c={c_lo}", "< 1 ms", added, None if added is None else added < 1.0))
    for name in ("passthrough", "translated"):
        for mode in ("whole", "stream"):
            r = derived.get(f"{name}|{mode}|{c_hi}", {}).get("throughput_vs_direct")
            checks.append(target(f"{name} throughput vs direct, {mode}, c={c_hi}", ">= 0.33", r, None if r is None else r >= 1 / 3))
    targets_table(checks)
    if hot:
        console.print("gateway hot spots (cProfile, by own time; profiled figures are slower than real):")
        for line in hot:
            console.print("  " + line)
    return {"settings": {"duration_s_per_cell": duration_s, "concurrencies": list(concurrencies), "profiled": hot is not None},
            "cells": cells, "derived": derived, "targets": checks, "litellm": "measured" if have_litellm else "skipped (not importable)",
            "hot_spots": hot}


async def main(args) -> None:
    results = await run(args.duration, tuple(args.concurrency), args.profile)
    save("overhead", results)
