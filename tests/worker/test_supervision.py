"""The worker as a process: batching, cancellation, crashes, hangs, the model pool, names."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal

import pytest

from mlxgw.canonical import Finish, TextDelta
from mlxgw.errors import UpstreamError
from tests.worker.helpers import WAIT_S, answer, chat, run, until

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Long enough that an uncancelled answer outlasts WAIT_S even on a fast machine: only the
# cancellation can end it within the wait (a short answer could end on its own under load).
LONG = 40_000


async def test_concurrent_requests_decode_in_one_batch(own_backend):
    local = own_backend()
    await asyncio.wait_for(local.start(), WAIT_S)
    requests = [chat(f"Question number {i} about batching?", max_tokens=48) for i in range(8)]
    answers = await asyncio.gather(*(answer(local, r) for r in requests))
    assert all(a.usage.output_tokens > 0 for a in answers)

    stats = (await local.status())["batch"]
    assert stats["requests"] == 8
    assert stats["max_batch_size"] == 8
    # Batched: far fewer decode steps than tokens.
    assert stats["steps"] < stats["generated_tokens"] / 2


async def test_a_request_joins_a_running_batch(own_backend):
    local = own_backend()
    first = local.stream(chat("A long answer, please.", max_tokens=LONG), "demo")
    async with asyncio.timeout(WAIT_S):
        async for event in first:
            if isinstance(event, TextDelta):
                break
        joined = await answer(local, chat("A short one.", max_tokens=8))
        stats = (await local.status())["batch"]
        await first.aclose()
    assert joined.usage.output_tokens > 0
    assert stats["max_batch_size"] == 2


async def test_cancelling_the_stream_removes_the_sequence(backend):
    async def active():
        return (await backend.status())["active_sequences"]

    async def cancelled_count():
        return (await backend.status())["batch"]["cancelled"]

    before = await cancelled_count()
    stream = backend.stream(chat("Go on for a long while.", max_tokens=LONG), "demo")
    async with asyncio.timeout(WAIT_S):
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        assert await active() == 1
        await stream.aclose()
    await until(lambda: _is(active, 0), timeout=WAIT_S)
    assert await cancelled_count() == before + 1

    # A consumer task that is cancelled cancels its sequence too.
    async def consume():
        async for _ in backend.stream(chat("And again, at length.", max_tokens=LONG), "demo"):
            pass

    task = asyncio.create_task(consume())
    await until(lambda: _is(active, 1), timeout=WAIT_S)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await until(lambda: _is(active, 0), timeout=WAIT_S)
    assert await cancelled_count() == before + 2

    # So does a consumer that breaks out of the loop and drops the stream.
    async def first_text():
        async for event in backend.stream(chat("Once more.", max_tokens=LONG), "demo"):
            if isinstance(event, TextDelta):
                return event

    assert await asyncio.wait_for(first_text(), WAIT_S)
    await until(lambda: _is(active, 0), timeout=WAIT_S)
    assert await cancelled_count() == before + 3


async def _is(probe, value) -> bool:
    return await probe() == value


async def test_a_killed_worker_fails_in_flight_requests_and_is_restarted(own_backend):
    local = own_backend()
    await asyncio.wait_for(local.start(), WAIT_S)
    pid = (await local.status())["pid"]

    stream = local.stream(chat("Keep talking.", max_tokens=LONG), "demo")
    with pytest.raises(UpstreamError) as caught:
        async with asyncio.timeout(WAIT_S):
            async for event in stream:
                if isinstance(event, TextDelta) and pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    pid = None
    assert caught.value.retryable and caught.value.kind == "unavailable"
    assert "crashed" in caught.value.message

    after = await answer(local, chat("Are you back?", max_tokens=8))
    assert after.finish.reason in ("max_tokens", "end_turn")
    status = await local.status()
    assert status["restarts"] == 1 and status["running"]


async def test_a_silent_worker_times_out_instead_of_hanging(own_backend):
    local = own_backend(first_byte_timeout_s=1.5)
    await asyncio.wait_for(local.start(), WAIT_S)
    pid = (await local.status())["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(UpstreamError) as caught:
            await run(local, chat(max_tokens=8))
    finally:
        os.kill(pid, signal.SIGCONT)
    assert caught.value.kind == "timeout" and caught.value.retryable
    # The wedged worker was put down; the next request gets a fresh one.
    after = await answer(local, chat(max_tokens=8))
    assert after.usage.output_tokens > 0
    assert (await local.status())["pid"] != pid


@pytest.mark.parametrize("name", ["/etc", "../x", "DEMO", ""])
async def test_only_mapped_names_load(own_backend, demo_dir, name):
    local = own_backend()
    with pytest.raises(UpstreamError) as caught:
        await run(local, chat(), model=name)
    assert (caught.value.kind, caught.value.retryable) == ("not_found", True)
    # Not even the path of a real model loads when it is not a mapped name.
    with pytest.raises(UpstreamError):
        await run(local, chat(), model=str(demo_dir))
    assert (await local.status())["running"] is False  # nothing was loaded, not even a worker


async def test_a_missing_or_broken_model_is_unavailable_not_downloaded(own_backend, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    models = {
        "gone": str(tmp_path / "nowhere"),
        "repo": "mlxgw-tests/not-a-cached-model",
        "broken": str(broken),
    }
    # The mapping may be a callable, read on each request (the config reloads live).
    local = own_backend(lambda: models)
    for model in models:
        with pytest.raises(UpstreamError) as caught:
            await run(local, chat(), model=model)
        error = caught.value
        assert (error.kind, error.code, error.retryable) == ("unavailable", "model_unavailable", True)
    assert (await local.status())["models"] == []


async def test_pool_evicts_the_least_recently_used_model(own_backend, demo_dir, tmp_path):
    other = shutil.copytree(demo_dir, tmp_path / "other")
    local = own_backend({"a": str(demo_dir), "b": str(other)}, max_loaded_models=1)

    # Concurrent requests for a model not yet loaded share one load.
    await asyncio.gather(*(answer(local, chat(max_tokens=4), "a") for _ in range(3)))
    status = await local.status()
    assert [m["name"] for m in status["models"]] == ["a"] and status["loads"] == 1

    await answer(local, chat(max_tokens=4), "b")
    status = await local.status()
    assert [m["name"] for m in status["models"]] == ["b"]
    assert (status["loads"], status["unloads"]) == (2, 1)
    assert status["models"][0]["memory_bytes"] > 0

    assert await local.unload("b") == "unloaded"
    assert await local.unload("a") == "not_loaded"
    assert (await local.status())["models"] == []
    loaded = await local.load("a")
    assert loaded["name"] == "a" and loaded["context_length"] > 0


async def test_a_generating_model_unloads_only_when_it_is_done(own_backend):
    local = own_backend()
    stream = local.stream(chat("Long answer.", max_tokens=LONG), "demo")
    async with asyncio.timeout(WAIT_S):
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        assert await local.unload("demo") == "unloading"
        assert [m["name"] for m in (await local.status())["models"]] == ["demo"]
        await stream.aclose()
        await until(_no_models(local), timeout=5)


async def test_idle_models_unload(own_backend):
    local = own_backend(idle_unload_s=0.3)
    await answer(local, chat(max_tokens=4))
    await until(_no_models(local), timeout=5)
    assert (await local.status())["unloads"] == 1


async def test_a_seeded_request_waits_for_the_batch_to_drain(own_backend):
    local = own_backend()
    finished = []

    async def tracked(name, request):
        result = await answer(local, request)
        finished.append(name)
        return result

    long = asyncio.create_task(tracked("unseeded", chat("Long.", max_tokens=400)))
    await until(lambda: _running(local), timeout=WAIT_S)
    seeded = await asyncio.wait_for(tracked("seeded", chat("Short.", max_tokens=4, seed=3)), WAIT_S)
    await asyncio.wait_for(long, WAIT_S)
    assert finished == ["unseeded", "seeded"]
    assert seeded.usage.output_tokens > 0
    assert (await local.status())["batch"]["max_batch_size"] == 1


async def _running(local) -> bool:
    status = await local.status()
    return status.get("active_sequences", 0) > 0


def _no_models(local):
    async def probe():
        return (await local.status())["models"] == []

    return probe


async def test_close_stops_the_worker(own_backend):
    local = own_backend()
    await asyncio.wait_for(local.start(), WAIT_S)
    pid = (await local.status())["pid"]
    await asyncio.wait_for(local.close(), WAIT_S)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert (await local.status())["running"] is False
    assert isinstance((await run(local, chat(max_tokens=4)))[-1], Finish)  # and it comes back on use


@pytest.mark.parametrize("python", ["/nonexistent/python3", "/bin/false"])
async def test_a_worker_that_cannot_start_is_a_retryable_error(own_backend, python):
    local = own_backend(python=python)
    with pytest.raises(UpstreamError) as caught:
        await run(local, chat(max_tokens=4))
    assert (caught.value.kind, caught.value.retryable) == ("unavailable", True)
    assert "did not start" in caught.value.message


async def test_a_missing_directory_fails_without_starting_a_worker(own_backend, tmp_path):
    local = own_backend({"gone": str(tmp_path / "nowhere")})
    with pytest.raises(UpstreamError) as caught:
        await run(local, chat(), model="gone")
    assert caught.value.code == "model_unavailable" and "no directory" in caught.value.message
    assert (await local.status())["running"] is False
