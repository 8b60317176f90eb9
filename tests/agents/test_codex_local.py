"""The real Codex CLI on a local model: `codex exec` against a real `mlxgw serve` (a subprocess with
its own home) whose mapping sends Codex's model to the MLX worker, then `codex exec resume --last`,
whose request the request log shows served from the prefix cache.

The model is a copy of the offline demo model whose weights are set to answer every prompt with
one sentence and then end its turn: random weights never end one, and Codex treats an answer cut
at its output limit as an error (`Incomplete response returned`). Everything else about it is the
demo's: the same layers and tokenizer, loaded by mlx-lm like any model, its prefill and KV cache
computed over Codex's real prompt (~11k tokens with its tools)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mlxgw import paths
from mlxgw.worker.demo import build_demo_model
from tests.agents import codex
from tests.daemon.helpers import MLXGW, free_port
from tests.foundation.helpers import cli
from tests.scripted_model import scripted_model

ANSWER = "This is the local model."
MODEL = "gpt-test"  # what Codex asks for; the mapping sends it to the local model
START_S = 30.0
LOG_WAIT_S = 10.0


@pytest.fixture(scope="session")
def answering_model(tmp_path_factory) -> Path:
    models = tmp_path_factory.mktemp("models")
    return scripted_model(build_demo_model(models / "demo"), models / "answering", ANSWER)


@contextlib.asynccontextmanager
async def serve(model: Path, output: Path) -> AsyncIterator[str]:
    """`mlxgw serve` in a subprocess on this test's home (what it prints goes to `output`), MODEL
    mapped to `model` on the local backend; yields its base URL once /health answers, and stops it
    on the way out."""
    port = free_port()
    paths.config_path().parent.mkdir(parents=True, exist_ok=True)
    paths.config_path().write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n'
        # A bound on any turn that would not end; the memory cache serves the next turn (no disk needed).
        "[local]\ndefault_max_tokens = 64\ndisk_cache_gb = 0\n\n"
        f'[[mappings]]\npattern = "{MODEL}"\nbackend = "local"\nmodel = "{model}"\n'
    )
    with output.open("wb") as out:
        proc = subprocess.Popen([*MLXGW, "serve"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(START_S):
            while True:
                assert proc.poll() is None, output.read_text()
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url + "/health") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def logged(n: int) -> list[dict]:
    """The rows of `mlxgw log --json` once the daemon has written `n` (it writes in batches)."""
    async with asyncio.timeout(LOG_WAIT_S):
        while len(rows := [json.loads(line) for line in cli("log", "--json").output.splitlines()]) < n:
            await asyncio.sleep(0.2)
    return rows


async def test_codex_runs_two_turns_on_the_local_model_and_the_second_is_served_from_the_cache(
    agent_clis, answering_model, tmp_path
):
    async with (
        serve(answering_model, tmp_path / "serve.log") as url,
        codex.sandbox(tmp_path, url + "/v1", model=MODEL) as (home, work, egress),
    ):
        first = await codex.run_exec(agent_clis["codex"], home, "say hi", egress=egress, cwd=work)
        assert first.returncode == 0, first.explain()
        assert first.stdout.strip() == ANSWER, first.explain()
        second = await codex.run_exec(agent_clis["codex"], home, "and again", egress=egress, cwd=work,
                                      subcommand=("resume", "--last"))
        assert second.returncode == 0, second.explain()
        assert second.stdout.strip() == ANSWER, second.explain()
        turn1, turn2 = await logged(2)  # one request a turn, nothing else

    for row in (turn1, turn2):
        assert (row["protocol"], row["backend"], row["status"], row["error"]) == ("responses", "local", 200, None)
        assert row["output_tokens"] > 0 and row["prefill_ms"] is not None
    prompt = turn2["input_tokens"] + turn2["cached_tokens"]
    assert prompt > turn1["input_tokens"] + turn1["cached_tokens"] > 5000  # Codex's real prompt, then more
    assert turn2["cached_tokens"] >= 0.9 * prompt, turn2
