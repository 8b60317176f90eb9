"""`scripts/bench agent`: a recorded coding session of each agent (bench/sessions/, recorded from the
real binaries by bench/record_sessions.py) replayed against the local demo model, through mlxgw's
worker and through mlx_lm.server, in one run.

Each turn's recorded body is sent as the agent sent it, in the agent's own protocol (Claude Code's
Anthropic Messages, Codex's Responses) to `mlxgw serve`; only the model (renamed to the mapping) and
the output limit change. The history is the recorded one, not what the demo model answered: that is
what an agent resends, and it is the same for both servers. mlx_lm.server speaks only Chat
Completions, so its turns go through a second mlxgw whose mapping points at it as an `openai`
backend: both engines then get the same prompt, mlxgw's translation of the agent's body, and what
differs is the engine and its cache; the hop costs about a millisecond against prefills of 100 ms
and more. Each turn goes to both, one after the other (which first alternates from run to run), so
the load of a shared machine drifts alike over both. Per turn: time to the first generated token,
prompt tokens, tokens read from the cache (the usage the client gets; the request log's row is kept
in the JSON) and so tokens prefilled. Then both restart, mlxgw with only its disk cache,
mlx_lm.server with nothing, and the first turns are replayed again. The whole is repeated `runs`
times on fresh servers; the tables show medians.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import lzma
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from bench import procs
from bench.local import _written
from bench.report import console, save, table, target, targets_table

SESSIONS = Path(__file__).parent / "sessions"
AGENTS = {"claude": "claude_code", "codex": "codex"}
MODEL = "demo"  # the mapping the replay's bodies are renamed to
MLX_SERVER_MODEL = "default_model"  # mlx_lm.server's name for the model it was started with
TURN_TIMEOUT_S = 600
FIGURES = ("ttft_s", "total_s", "prompt_tokens", "cached_tokens", "prefilled_tokens")
# The daemon's own view of each turn, from its request log.
LOGGED = ("ttft_ms", "input_tokens", "cached_tokens", "prefill_ms")


def load_session(name: str) -> dict[str, Any]:
    return json.loads(lzma.decompress((SESSIONS / f"{name}.json.xz").read_bytes()))


def replay_body(recorded: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """The recorded body with the demo mapping's model, streamed, its output cut to `max_tokens`."""
    body = copy.deepcopy(recorded["body"])
    body["model"] = MODEL
    body["stream"] = True
    if recorded["path"].startswith("/v1/responses"):
        body["max_output_tokens"] = max_tokens
    else:
        body["max_tokens"] = max_tokens
    return body


def _frames(buffer: bytearray) -> Iterator[dict[str, Any]]:
    """Each complete SSE frame's JSON data in `buffer`, removing them from it."""
    while (end := buffer.find(b"\n\n")) >= 0:
        frame = bytes(buffer[:end])
        del buffer[: end + 2]
        data = b"".join(line[5:].strip() for line in frame.split(b"\n") if line.startswith(b"data:"))
        if data and data != b"[DONE]":
            yield json.loads(data)


class _Usage:
    """What a stream says of its prompt, in either protocol."""

    def __init__(self) -> None:
        self.prompt = 0
        self.cached = 0

    def read(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        if kind in ("message_start", "message_delta"):  # Anthropic: input_tokens excludes the cache
            usage = (event.get("message") or {}).get("usage") if kind == "message_start" else event.get("usage")
            if usage and "input_tokens" in usage:
                self.cached = usage.get("cache_read_input_tokens") or 0
                self.prompt = usage["input_tokens"] + self.cached + (usage.get("cache_creation_input_tokens") or 0)
        elif kind in ("response.completed", "response.incomplete"):  # Responses: input_tokens includes the cache
            usage = event["response"].get("usage") or {}
            self.prompt = usage.get("input_tokens", 0)
            self.cached = (usage.get("input_tokens_details") or {}).get("cached_tokens", 0)


def _is_token(event: dict[str, Any]) -> bool:
    """A frame carrying generated output (text, thinking or a tool call's arguments), not a ping."""
    kind = event.get("type", "")
    return kind == "content_block_delta" or (kind.startswith("response.") and kind.endswith(".delta"))


def _failure(event: dict[str, Any]) -> str | None:
    kind = event.get("type", "")
    if kind in ("error", "response.failed"):
        return json.dumps(event)[:300]
    return None


async def send_turn(session: aiohttp.ClientSession, url: str, recorded: dict[str, Any], max_tokens: int) -> dict:
    """One recorded turn, streamed: time to its first generated token, prompt and cached tokens."""
    body = replay_body(recorded, max_tokens)
    headers = {"content-type": "application/json", "authorization": "Bearer bench", **recorded["headers"]}
    usage = _Usage()
    started = time.perf_counter()
    first = None
    buffer = bytearray()
    async with session.post(url + recorded["path"], data=json.dumps(body), headers=headers,
                            timeout=aiohttp.ClientTimeout(total=TURN_TIMEOUT_S)) as r:
        if r.status != 200:
            raise RuntimeError(f"{recorded['path']}: HTTP {r.status}: {(await r.read())[:300]!r}")
        async for chunk in r.content.iter_any():
            buffer += chunk
            for event in _frames(buffer):
                if problem := _failure(event):
                    raise RuntimeError(f"{recorded['path']}: the stream failed: {problem}")
                if first is None and _is_token(event):
                    first = time.perf_counter() - started
                usage.read(event)
    total = time.perf_counter() - started
    # An answer that is only a stop token has no delta: its first token is the end of the stream.
    ttft = first if first is not None else total
    return {"ttft_s": ttft, "total_s": total, "prompt_tokens": usage.prompt, "cached_tokens": usage.cached,
            "prefilled_tokens": usage.prompt - usage.cached}


async def _warm_up(session: aiohttp.ClientSession, url: str) -> None:
    """Loads the model and compiles the CPU kernels, on a prompt that shares nothing with the session's."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    async with session.post(url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer bench"},
                            timeout=aiohttp.ClientTimeout(total=TURN_TIMEOUT_S)) as r:
        if r.status != 200:
            raise RuntimeError(f"warm-up: HTTP {r.status}: {(await r.read())[:300]!r}")
        await r.read()


async def _logged(session: aiohttp.ClientSession, url: str, n: int) -> list[dict]:
    """The request log's view of the last `n` requests (written in batches: polled until there)."""
    for _ in range(100):
        rows = (await procs.get_json(session, url + "/mlxgw/requests?limit=500"))["requests"]
        if len(rows) > n:  # and the warm-up's
            return [{k: row.get(k) for k in LOGGED} for row in rows[-n:]]
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url}: the request log never showed the replayed turns")


@contextlib.contextmanager
def _servers(model_dir: Path, log_dir: Path, disk_cache: Path | None) -> Iterator[tuple[procs.Gateway, procs.Gateway]]:
    """(mlxgw with the demo model in its worker, mlxgw in front of mlx_lm.server): fresh daemons, the
    first given `disk_cache` as its <home>/cache, and a fresh mlx_lm.server, loading its model while
    the daemons start."""
    port = procs.free_port()
    server = procs.spawn("mlx_lm.server", [sys.executable, "-m", "mlx_lm.server", "--model", str(model_dir),
                                           "--host", "127.0.0.1", "--port", str(port)], log_dir=log_dir,
                         env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"})
    try:
        with contextlib.ExitStack() as stack:
            ours = stack.enter_context(procs.gateway(
                log_dir, mappings=[{"pattern": MODEL, "backend": "local", "model": str(model_dir)}]))
            if disk_cache is not None:  # before the first request starts the worker
                shutil.copytree(disk_cache, ours.home / "cache", dirs_exist_ok=True)
            theirs = stack.enter_context(procs.gateway(
                log_dir, backends={"mlx": {"type": "openai", "base_url": f"http://127.0.0.1:{port}/v1"}},
                mappings=[{"pattern": MODEL, "backend": "mlx", "model": MLX_SERVER_MODEL}]))
            procs.wait_http(server, f"http://127.0.0.1:{port}/health", 120)
            yield ours, theirs
    finally:
        server.stop()


async def _replay(session: aiohttp.ClientSession, ours: procs.Gateway, theirs: procs.Gateway, turns: list[dict],
                  max_tokens: int, label: str, ours_first: bool) -> tuple[list[dict], list[dict]]:
    """Each turn to both servers, one after the other (`ours_first` says which goes first), so that the
    load of a shared machine drifts alike over both. mlxgw's worker finishes what it does between
    turns (the next turn computed ahead, disk writes) before the next request: an agent runs its
    tools meanwhile."""
    await asyncio.gather(_warm_up(session, ours.url), _warm_up(session, theirs.url))

    async def mine(recorded: dict) -> dict:
        result = await send_turn(session, ours.url, recorded, max_tokens)
        settled = time.perf_counter()
        await _written(session, ours.url)
        result["settle_s"] = time.perf_counter() - settled
        return result

    a, b = [], []
    for n, recorded in enumerate(turns, 1):
        if ours_first:
            a.append(await mine(recorded))
            b.append(await send_turn(session, theirs.url, recorded, max_tokens))
        else:
            b.append(await send_turn(session, theirs.url, recorded, max_tokens))
            a.append(await mine(recorded))
        console.print(f"  {label} turn {n}/{len(turns)}: {a[-1]['prompt_tokens']} prompt tokens; mlxgw "
                      f"{a[-1]['cached_tokens']} from the cache, first token {a[-1]['ttft_s'] * 1000:,.0f} ms; "
                      f"mlx_lm.server {b[-1]['cached_tokens']}, {b[-1]['ttft_s'] * 1000:,.0f} ms")
    for result, row in zip(a, await _logged(session, ours.url, len(a)), strict=True):
        result["request_log"] = row
    return a, b


async def _one_run(model_dir: Path, log_dir: Path, turns: list[dict], again: int, max_tokens: int, label: str,
                   ours_first: bool) -> dict:
    out: dict[str, dict] = {"mlxgw": {}, "mlx_lm_server": {}}
    kept = Path(tempfile.mkdtemp(prefix="mlxgw-bench-cache-"))
    try:
        async with aiohttp.ClientSession() as session:
            with _servers(model_dir, log_dir, None) as (ours, theirs):
                out["mlxgw"]["turns"], out["mlx_lm_server"]["turns"] = await _replay(
                    session, ours, theirs, turns, max_tokens, label, ours_first)
                out["mlxgw"]["prompt_cache"] = await _written(session, ours.url)
                shutil.copytree(ours.home / "cache", kept / "cache")
            # Both restarted: mlxgw with only the first daemon's disk cache, mlx_lm.server with nothing.
            with _servers(model_dir, log_dir, kept / "cache") as (ours, theirs):
                out["mlxgw"]["after_restart"], out["mlx_lm_server"]["after_restart"] = await _replay(
                    session, ours, theirs, turns[:again], max_tokens, label + " restarted,", ours_first)
    finally:
        shutil.rmtree(kept, ignore_errors=True)
    return out


def _median_run(runs: list[dict], server: str) -> dict:
    """Per phase and turn, the median of each figure over the runs."""
    out = {}
    for phase in ("turns", "after_restart"):
        per_turn = zip(*(run[server][phase] for run in runs), strict=True)
        out[phase] = [{key: statistics.median(t[key] for t in turn) for key in FIGURES} for turn in per_turn]
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _targets(agent: str, ours: dict, theirs: dict) -> list[dict]:
    turns, later = ours["turns"], ours["turns"][1:]
    cold = turns[0]["ttft_s"]
    checks = []
    if later:
        share = max(t["prefilled_tokens"] / t["prompt_tokens"] for t in later if t["prompt_tokens"])
        checks.append(target(f"{agent}: turns >= 2 prefill (worst turn's share of its prompt)", "<= 0.05", share,
                             share <= 0.05))
        ttft = max(t["ttft_s"] for t in later) / cold
        checks.append(target(f"{agent}: turns >= 2 TTFT vs the first (worst)", "<= 0.15", ttft, ttft <= 0.15))
    restart = _ratio(ours["after_restart"][0]["ttft_s"], cold)
    checks.append(target(f"{agent}: first turn after a restart vs cold", "<= 0.25", restart,
                         restart is not None and restart <= 0.25))
    ahead = sum(a["ttft_s"] < b["ttft_s"] for a, b in zip(turns, theirs["turns"], strict=True))
    checks.append(target(f"{agent}: turns where mlxgw's TTFT beats mlx_lm.server's", f"{len(turns)}/{len(turns)}",
                         f"{ahead}/{len(turns)}", ahead == len(turns)))
    return checks


def _table(agent: str, runs: int, ours: dict, theirs: dict) -> None:
    rows = []
    for phase, name in (("turns", "turn"), ("after_restart", "restarted, turn")):
        for n, (a, b) in enumerate(zip(ours[phase], theirs[phase], strict=True), 1):
            rows.append([f"{name} {n}", a["prompt_tokens"], a["cached_tokens"], a["prefilled_tokens"],
                         f"{a['cached_tokens'] / a['prompt_tokens']:.1%}" if a["prompt_tokens"] else "—",
                         a["ttft_s"] * 1000, b["prompt_tokens"], b["cached_tokens"], b["ttft_s"] * 1000,
                         _ratio(a["ttft_s"], b["ttft_s"])])
    table(f"agent: {agent}'s recorded session on the demo model (median of {runs} runs; TTFT in ms)",
          ["", "prompt", "cached", "prefilled", "hit", "mlxgw TTFT", "mlx_lm prompt", "mlx_lm cached",
           "mlx_lm TTFT", "TTFT ratio"], rows)


def _summary(replay: list[dict]) -> dict:
    prompt = sum(t["prompt_tokens"] for t in replay)
    cached = sum(t["cached_tokens"] for t in replay)
    return {"prompt_tokens": prompt, "cached_tokens": cached, "hit_ratio": cached / prompt if prompt else None,
            "ttft_s": [t["ttft_s"] for t in replay]}


async def run(agents: list[str], turns: int | None = None, again: int = 2, max_tokens: int = 32, runs: int = 3
              ) -> dict:
    from mlxgw.worker.demo import build_demo_model

    results, checks = {}, []
    with tempfile.TemporaryDirectory(prefix="mlxgw-bench-") as tmp:
        log_dir = Path(tmp)
        console.print("building the demo model")
        model_dir = build_demo_model(log_dir / "demo")
        for agent in agents:
            session = load_session(AGENTS[agent])
            replayed = session["requests"][:turns]
            console.print(f"{session['agent']} {session['version']}: {len(replayed)} of "
                          f"{len(session['requests'])} recorded turns, {runs} runs")
            raw = [await _one_run(model_dir, log_dir, replayed, min(again, len(replayed)), max_tokens,
                                  f"{agent} run {i + 1}/{runs}", ours_first=i % 2 == 0) for i in range(runs)]
            ours, theirs = _median_run(raw, "mlxgw"), _median_run(raw, "mlx_lm_server")
            _table(session["agent"], runs, ours, theirs)
            mine, other = _summary(ours["turns"]), _summary(theirs["turns"])
            console.print(f"cache hit ratio over the session: mlxgw {mine['hit_ratio']:.1%} of {mine['prompt_tokens']} "
                          f"prompt tokens, mlx_lm.server {other['hit_ratio']:.1%}")
            checks += _targets(session["agent"], ours, theirs)
            results[agent] = {"agent": session["agent"], "version": session["version"],
                              "summary": {"mlxgw": mine, "mlx_lm_server": other},
                              "median": {"mlxgw": ours, "mlx_lm_server": theirs}, "runs": raw}
    targets_table(checks)
    return {"settings": {"agents": agents, "turns": turns, "replayed_after_restart": again, "max_tokens": max_tokens,
                         "runs": runs},
            "results": results, "targets": checks}


async def main(args) -> None:
    agents = list(AGENTS) if args.agent == "all" else [args.agent]
    save("agent", await run(agents, args.turns, args.again, args.max_tokens, args.runs))
