"""The cache survives restarts: long prompts are also kept in <home>/cache, so a new worker (after a
restart, a crash, an unload) or a new gateway with the same home does not prefill them again; the
disk budget keeps the most recently used."""

from __future__ import annotations

import os
import signal

import anthropic

from mlxgw import paths
from mlxgw.errors import UpstreamError
from tests.prefix_cache.helpers import (
    SYSTEM,
    WAIT_S,
    cache_status,
    chat,
    gateway,
    prompt_tokens,
    prose,
    run,
    session,
    until,
    worker,
    written,
)


async def test_a_restarted_worker_reads_a_long_prompt_from_disk(demo_dir, demo_tokenizer):
    request = session("Which files does the project have?")
    prompt = len(prompt_tokens(demo_tokenizer, request))
    async with worker(demo_dir) as local:
        assert (await run(local, request))[0].cache_read_tokens == 0
    # Closed as the daemon closes it: the worker finished writing before it exited.
    async with worker(demo_dir) as local:
        start = (await run(local, request))[0]
        assert start.input_tokens <= 0.05 * prompt
        status = await cache_status(local)

    assert start.cache_read_tokens == status["disk_tokens_reused"] == prompt - start.input_tokens
    assert status["disk_hits"] == 1
    assert status["disk"]["entries"] >= 1 and status["disk"]["bytes"] > 0
    assert status["memory_entries"] >= 1 and status["memory_bytes"] > 0
    assert [p.name for p in paths.prompt_cache_dir().iterdir() if p.is_dir()]  # one folder a model


async def test_a_crashed_worker_loses_nothing_it_had_written(demo_dir, demo_tokenizer):
    request = session("Why does the build fail?")
    prompt = len(prompt_tokens(demo_tokenizer, request))
    async with worker(demo_dir) as local:
        await run(local, request)
        assert (await written(local))["saves"] >= 1
        os.kill((await local.status())["pid"], signal.SIGKILL)
        await until(lambda: _stopped(local))
        start = (await run(local, request))[0]  # on a new worker
        assert start.input_tokens <= 0.05 * prompt
        assert (await cache_status(local))["disk_hits"] == 1


async def test_an_unloaded_model_reads_its_prompts_back_from_disk(demo_dir, demo_tokenizer):
    request = session("Add a test for the parser.")
    prompt = len(prompt_tokens(demo_tokenizer, request))
    async with worker(demo_dir) as local:
        await run(local, request)
        await written(local)
        assert await local.unload("demo") == "unloaded"
        start = (await run(local, request))[0]
        assert start.input_tokens <= 0.05 * prompt
        assert (await cache_status(local))["disk_hits"] == 1


async def test_a_damaged_entry_is_a_miss_and_is_replaced(demo_dir, demo_tokenizer):
    request = session("Rename the helper.")
    async with worker(demo_dir) as local:
        await run(local, request)
    (kv,) = paths.prompt_cache_dir().glob("*/*.safetensors")
    kv.write_bytes(kv.read_bytes()[:1000])  # cut short, as a full disk or a crash leaves it

    async with worker(demo_dir) as local:
        assert (await run(local, request))[0].cache_read_tokens == 0
        assert (await cache_status(local))["disk_hits"] == 0
    async with worker(demo_dir) as local:
        start = (await run(local, request))[0]
    assert start.input_tokens <= 0.05 * len(prompt_tokens(demo_tokenizer, request))


async def test_the_disk_budget_keeps_the_most_recently_used(demo_dir):
    # Four unrelated prompts of some 1,300 tokens (about 170 KB each on disk); room for two.
    budget = 450_000
    requests = [chat(prose(1000, seed=10 + i), max_tokens=4) for i in range(4)]
    async with worker(demo_dir, disk_cache_gb=budget / 2**30) as local:
        for request in requests:
            await run(local, request)
        disk = await written(local)
    assert disk["entries"] == 2 and disk["bytes"] <= budget
    assert disk["evictions"] == 2

    async with worker(demo_dir, disk_cache_gb=budget / 2**30) as local:
        assert (await run(local, requests[0]))[0].cache_read_tokens == 0  # the oldest went
        assert (await run(local, requests[3]))[0].cache_read_tokens > 1000


async def test_a_restarted_gateway_with_the_same_home_answers_from_the_disk_cache(demo_dir):
    ask = {
        "model": "demo",
        "max_tokens": 8,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "Which files does the project have?"}],
        "extra_body": {"temperature": 0},
    }
    async with gateway(demo_dir) as url:
        async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0, timeout=WAIT_S) as client:
            cold = (await client.messages.create(**ask)).usage
    async with gateway(demo_dir) as url:
        async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0, timeout=WAIT_S) as client:
            warm = (await client.messages.create(**ask)).usage

    assert cold.cache_read_input_tokens == 0
    prompt = cold.input_tokens
    assert warm.input_tokens + warm.cache_read_input_tokens == prompt
    assert warm.input_tokens <= 0.05 * prompt


async def _stopped(local) -> bool:
    try:
        return not (await local.status())["running"]
    except UpstreamError:  # it died while answering
        return True
