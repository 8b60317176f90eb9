"""`scripts/bench local`: the demo model generating the same prompt in-process (mlx_lm.stream_generate),
through mlx_lm.server and through mlxgw; one stream, then `clients` concurrent ones. Then the prefix
cache through mlxgw: a long agent-like prompt cold, its next turn, a second session sharing its head,
and the first prompt again on a new daemon that has only the first one's disk cache.

Temperature 0 (greedy) and a fixed max_tokens make every path generate the same tokens. No seed is
sent: both servers run a seeded request alone, which would defeat the batching being measured.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import procs
from bench.report import console, save, table, target, targets_table

PROMPT = "Tell me a long story about a gateway that forwards messages between machines."
# The prefix-cache scenario's shared head, in demo-model tokens: about what Claude Code's system
# prompt and tools take.
PREFIX_TOKENS = 20_000
# The constrained runs' format: one string the demo's gibberish fills to max_tokens, so both runs
# generate as many tokens and tokens/s compare like for like.
STORY_FORMAT = {"response_format": {"type": "json_schema", "json_schema": {"name": "story", "schema": {
    "type": "object", "properties": {"story": {"type": "string"}}, "required": ["story"], "additionalProperties": False}}}}


def _in_process(model_dir: Path, max_tokens: int, runs: int) -> list[dict]:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import mlx_lm
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = mlx_lm.load(str(model_dir))
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True)
    sampler = make_sampler(0.0)
    out = []
    for i in range(runs + 1):  # the first run warms up (kernel compilation)
        started = time.perf_counter()
        first = None
        n = 0
        for _ in mlx_lm.stream_generate(model, tokenizer, prompt, max_tokens=max_tokens, sampler=sampler):
            n += 1
            first = first or time.perf_counter() - started
        total = time.perf_counter() - started
        if i:
            out.append({"tokens": n, "ttft_s": first, "total_s": total, "tokens_per_s": n / total})
    del model, tokenizer
    gc.collect()
    return out


async def _stream(session: aiohttp.ClientSession, url: str, model: str, max_tokens: int, extra: dict | None = None) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens,
            "temperature": 0.0, "stream": True, "stream_options": {"include_usage": True}, **(extra or {})}
    started = time.perf_counter()
    first = None
    usage = None
    pieces: list[str] = []
    buffer = b""
    async with session.post(url + "/v1/chat/completions", json=body, timeout=aiohttp.ClientTimeout(total=300)) as r:
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}: {(await r.read())[:300]!r}")
        async for chunk in r.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                line = frame.strip()
                if not line.startswith(b"data:") or line == b"data: [DONE]":
                    continue
                data = json.loads(line[5:])
                if data.get("usage"):
                    usage = data["usage"]
                for choice in data.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        first = first or time.perf_counter() - started
                        pieces.append(text)
    total = time.perf_counter() - started
    tokens = (usage or {}).get("completion_tokens") or 0
    return {"tokens": tokens, "ttft_s": first, "total_s": total, "tokens_per_s": tokens / total if total else 0,
            "text_chars": len("".join(pieces))}


def _agent_head(model_dir: Path, tokens: int) -> str:
    """A system prompt of about `tokens` tokens of English documentation (the standard library's)."""
    from mlx_lm.utils import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    text = (Path(sysconfig.get_paths()["stdlib"]) / "pydoc_data" / "topics.py").read_text(encoding="utf-8")
    while len(tokenizer.encode(text, add_special_tokens=False)) < tokens:
        text += text
    ids = tokenizer.encode(text, add_special_tokens=False)[:tokens]
    return tokenizer.decode(ids)


async def _turn(session: aiohttp.ClientSession, url: str, messages: list[dict]) -> dict:
    """One streamed request: its TTFT, its usage, and the answer (for the next turn)."""
    body = {"model": "demo", "messages": messages, "max_tokens": 16, "temperature": 0.0, "stream": True,
            "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    first, usage, text = None, {}, []
    async with session.post(url + "/v1/chat/completions", json=body, timeout=aiohttp.ClientTimeout(total=600)) as r:
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}: {(await r.read())[:300]!r}")
        async for line in r.content:
            if not line.startswith(b"data:") or line.strip() == b"data: [DONE]":
                continue
            data = json.loads(line[5:])
            usage = data.get("usage") or usage
            for choice in data.get("choices") or []:
                first = first or time.perf_counter() - started
                text.append((choice.get("delta") or {}).get("content") or "")
    prompt = usage.get("prompt_tokens", 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return {"ttft_s": first, "prompt_tokens": prompt, "cached_tokens": cached, "answer": "".join(text)}


async def _prefix_cache(model_dir: Path, log_dir: Path) -> dict:
    head = _agent_head(model_dir, PREFIX_TOKENS)
    first = [{"role": "system", "content": head}, {"role": "user", "content": "Which files does the project have?"}]
    other = [{"role": "system", "content": head}, {"role": "user", "content": "Why does the build fail?"}]
    config = {"mappings": [{"pattern": "demo", "backend": "local", "model": str(model_dir)}]}
    phases = {}
    async with aiohttp.ClientSession() as session:
        with procs.gateway(log_dir, **config) as gw:
            await _turn(session, gw.url, [{"role": "user", "content": "hi"}])  # load the model, compile kernels
            console.print(f"  prefix cache: a cold prompt of {PREFIX_TOKENS} tokens")
            phases["cold"] = await _turn(session, gw.url, first)
            follow = [*first, {"role": "assistant", "content": phases["cold"]["answer"]},
                      {"role": "user", "content": "Open the first one."}]
            phases["next turn"] = await _turn(session, gw.url, follow)
            phases["second session"] = await _turn(session, gw.url, other)
            status = await _written(session, gw.url)
            kept = Path(tempfile.mkdtemp(prefix="mlxgw-bench-cache-"))
            shutil.copytree(gw.home / "cache", kept / "cache")
        # A new daemon, fresh but for the first one's disk cache.
        try:
            with procs.gateway(log_dir, **config) as gw:
                shutil.copytree(kept / "cache", gw.home / "cache", dirs_exist_ok=True)
                await _turn(session, gw.url, [{"role": "user", "content": "hi"}])
                phases["after a restart"] = await _turn(session, gw.url, first)
        finally:
            shutil.rmtree(kept, ignore_errors=True)
    for phase in phases.values():
        phase.pop("answer")
    return {"phases": phases, "status": status}


async def _written(session: aiohttp.ClientSession, url: str) -> dict:
    """The worker's prompt-cache status once everything it means to write to disk is there."""
    for _ in range(600):
        local = (await procs.get_json(session, url + "/mlxgw/status"))["local"]
        cache = local["prompt_cache"]
        if not local["computing_ahead"] and not cache["disk"]["pending_writes"]:
            return cache
        await asyncio.sleep(0.1)
    raise RuntimeError("the worker never finished writing its disk cache")


async def _measure_server(url: str, model: str, max_tokens: int, runs: int, clients: int, rounds: int, label: str,
                          extra: dict | None = None) -> dict:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await _stream(session, url, model, max_tokens, extra)  # warm-up: load the model, compile kernels
        single = []
        for i in range(runs):
            console.print(f"  {label}: single stream {i + 1}/{runs}")
            single.append(await _stream(session, url, model, max_tokens, extra))
        concurrent = []
        for i in range(rounds):
            console.print(f"  {label}: {clients} concurrent clients, round {i + 1}/{rounds}")
            started = time.perf_counter()
            results = await asyncio.gather(*(_stream(session, url, model, max_tokens, extra) for _ in range(clients)))
            wall = time.perf_counter() - started
            concurrent.append({"wall_s": wall, "tokens": sum(r["tokens"] for r in results),
                               "aggregate_tokens_per_s": sum(r["tokens"] for r in results) / wall,
                               "ttft_s_median": statistics.median([r["ttft_s"] or 0 for r in results]),
                               "per_request": results})
    return {"single": single, "concurrent": concurrent}


def _summary(single: list[dict], concurrent: list[dict] | None) -> dict:
    out = {
        "single_tokens_per_s": statistics.median([r["tokens_per_s"] for r in single]),
        "single_ttft_ms": statistics.median([(r["ttft_s"] or 0) * 1000 for r in single]),
        "tokens_per_request": statistics.median([r["tokens"] for r in single]),
    }
    if concurrent:
        out["concurrent_tokens_per_s"] = statistics.median([c["aggregate_tokens_per_s"] for c in concurrent])
        out["concurrent_ttft_ms"] = statistics.median([c["ttft_s_median"] * 1000 for c in concurrent])
    return out


async def run(max_tokens: int = 256, runs: int = 3, clients: int = 8, rounds: int = 2) -> dict:
    from mlxgw.worker.demo import build_demo_model

    with tempfile.TemporaryDirectory(prefix="mlxgw-bench-") as tmp:
        log_dir = Path(tmp)
        console.print("building the demo model")
        model_dir = build_demo_model(log_dir / "demo")
        console.print("in-process: mlx_lm.stream_generate")
        inproc = _in_process(model_dir, max_tokens, runs)

        console.print("mlx_lm.server")
        port = procs.free_port()
        server = procs.spawn("mlx_lm.server", [sys.executable, "-m", "mlx_lm.server", "--model", str(model_dir),
                                               "--host", "127.0.0.1", "--port", str(port)], log_dir=log_dir,
                             env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"})
        try:
            procs.wait_http(server, f"http://127.0.0.1:{port}/health", 120)
            mlx_server = await _measure_server(f"http://127.0.0.1:{port}", "default_model", max_tokens, runs, clients, rounds,
                                               "mlx_lm.server")
        finally:
            server.stop()

        console.print("mlxgw (local worker)")
        config = {"mappings": [{"pattern": "demo", "backend": "local", "model": str(model_dir)}]}
        with procs.gateway(log_dir, **config) as gw:
            ours = await _measure_server(gw.url, "demo", max_tokens, runs, clients, rounds, "mlxgw")
            constrained = await _measure_server(gw.url, "demo", max_tokens, runs, clients, rounds,
                                                "mlxgw json_schema", STORY_FORMAT)
        prefix = await _prefix_cache(model_dir, log_dir)

    s_in = _summary(inproc, None)
    s_srv = _summary(mlx_server["single"], mlx_server["concurrent"])
    s_gw = _summary(ours["single"], ours["concurrent"])
    s_json = _summary(constrained["single"], constrained["concurrent"])
    rows = [
        ["in-process (stream_generate)", s_in["single_tokens_per_s"], s_in["single_ttft_ms"], "—", "—", s_in["tokens_per_request"]],
        ["mlx_lm.server", s_srv["single_tokens_per_s"], s_srv["single_ttft_ms"], s_srv["concurrent_tokens_per_s"],
         s_srv["concurrent_ttft_ms"], s_srv["tokens_per_request"]],
        ["mlxgw", s_gw["single_tokens_per_s"], s_gw["single_ttft_ms"], s_gw["concurrent_tokens_per_s"],
         s_gw["concurrent_ttft_ms"], s_gw["tokens_per_request"]],
        ["mlxgw, json_schema constrained", s_json["single_tokens_per_s"], s_json["single_ttft_ms"],
         s_json["concurrent_tokens_per_s"], s_json["concurrent_ttft_ms"], s_json["tokens_per_request"]],
    ]
    table(f"local: demo model, max_tokens {max_tokens}, temperature 0 (tokens/s end to end, TTFT in ms)",
          ["path", "1 stream tok/s", "1 stream TTFT", f"{clients} clients tok/s", f"{clients} clients TTFT", "tokens/request"], rows)
    single_ratio = s_gw["single_tokens_per_s"] / s_in["single_tokens_per_s"]
    conc_ratio = s_gw["concurrent_tokens_per_s"] / s_srv["concurrent_tokens_per_s"]
    checks = [
        target("mlxgw single stream vs in-process", ">= 0.95", single_ratio, single_ratio >= 0.95),
        target(f"mlxgw {clients} clients vs mlx_lm.server", ">= 1.2", conc_ratio, conc_ratio >= 1.2),
        target("mlxgw single stream vs mlx_lm.server", "(info)", s_gw["single_tokens_per_s"] / s_srv["single_tokens_per_s"], None),
        target("constrained / unconstrained tok/s, 1 stream", "(info)",
               s_json["single_tokens_per_s"] / s_gw["single_tokens_per_s"], None),
        target(f"constrained / unconstrained tok/s, {clients} clients", "(info)",
               s_json["concurrent_tokens_per_s"] / s_gw["concurrent_tokens_per_s"], None),
    ]
    phases = prefix["phases"]
    table(f"prefix cache: a {PREFIX_TOKENS}-token head through mlxgw (TTFT in ms)",
          ["request", "prompt tokens", "from the cache", "TTFT"],
          [[name, p["prompt_tokens"], f"{p['cached_tokens'] / p['prompt_tokens']:.1%}", (p["ttft_s"] or 0) * 1000]
           for name, p in phases.items()])
    cold = phases["cold"]
    cold_s = cold["ttft_s"] or 0
    console.print(f"cold prefill: {cold['prompt_tokens'] / cold_s:.0f} tokens/s" if cold_s else "")
    for name, wanted in (("next turn", 0.15), ("second session", 0.15), ("after a restart", 0.25)):
        ratio = (phases[name]["ttft_s"] or 0) / cold_s if cold_s else None
        checks.append(target(f"{name} TTFT vs cold", f"<= {wanted}", ratio, ratio is not None and ratio <= wanted))
    turn = phases["next turn"]
    share = turn["cached_tokens"] / turn["prompt_tokens"]
    checks.append(target("next turn's prompt from the cache", ">= 0.95", share, share >= 0.95))
    targets_table(checks)
    return {"settings": {"max_tokens": max_tokens, "runs": runs, "clients": clients, "rounds": rounds, "temperature": 0.0,
                         "prompt": PROMPT, "prefix_tokens": PREFIX_TOKENS},
            "summary": {"in_process": s_in, "mlx_lm_server": s_srv, "mlxgw": s_gw, "mlxgw_json_schema": s_json,
                        "prefix_cache": phases},
            "raw": {"in_process": inproc, "mlx_lm_server": mlx_server, "mlxgw": ours, "mlxgw_json_schema": constrained,
                    "prefix_cache": prefix},
            "targets": checks}


async def main(args) -> None:
    save("local", await run(args.max_tokens, args.runs, args.clients, args.rounds))
