"""Long prompts on the real worker (demo model): the progress it reports while a prompt fills keeps
the request alive past first_byte_timeout_s, and a prefill cut off half-way leaves what it computed
in the prompt cache, so the client's retry does not pay for it again."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import openai
import pytest
import pytest_asyncio

from mlxgw import paths
from mlxgw.backends.local import LocalBackend
from mlxgw.settings import LocalSettings, Policy
from mlxgw.worker.demo import build_demo_model
from tests.gateway.helpers import start_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

STEP = 64  # prompt tokens a step: a long prompt fills in some thirty steps, reporting each
PROMPT_TOKENS = 1850
WAIT_S = 30.0


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")


@pytest.fixture(scope="module")
def long_prompt(demo_dir):
    """A user turn of about PROMPT_TOKENS tokens that starts with `opening`: each test its own."""
    from mlx_lm.utils import load_tokenizer

    tokenizer = load_tokenizer(demo_dir)

    def make(opening: str) -> list[dict]:
        text = opening
        while True:
            longer = text + " the weather in the city is fine today"
            messages = [{"role": "user", "content": longer}]
            if len(tokenizer.apply_chat_template(messages, add_generation_prompt=True)) > PROMPT_TOKENS:
                return [{"role": "user", "content": text}]
            text = longer

    return make


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(demo_dir, tmp_path_factory, request):
    """A gateway whose local policy allows 0.3 s of silence, in front of a warm worker."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLXGW_HOME", str(home))
        paths.config_path().parent.mkdir(parents=True, exist_ok=True)
        paths.config_path().write_text(
            "[server]\nhost = \"127.0.0.1\"\nport = 8421\n\n"
            "[local]\nfirst_byte_timeout_s = 0.3\nidle_timeout_s = 5\nmax_tries = 2\n\n"
            f"[[mappings]]\npattern = \"demo\"\nbackend = \"local\"\nmodel = \"{demo_dir}\"\n"
        )
        # The worker's own silence limit stays generous: the dispatcher's policy is under test.
        settings = LocalSettings(prefill_step_size=STEP, policy=Policy(first_byte_timeout_s=WAIT_S))
        local = LocalBackend(models={str(demo_dir): str(demo_dir)}, settings=settings)
        await asyncio.wait_for(local.load(str(demo_dir)), WAIT_S)
        server, url = await start_gateway(local=local)
        try:
            yield url, local
        finally:
            await server.close()


async def _stats(local: LocalBackend) -> dict:
    return await asyncio.wait_for(local.status(), WAIT_S)


async def _until(check, timeout: float = WAIT_S) -> dict:
    async def poll():
        while not (found := await check()):
            await asyncio.sleep(0.01)
        return found

    return await asyncio.wait_for(poll(), timeout)


@contextlib.asynccontextmanager
async def _client(url: str):
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=WAIT_S) as client:
        yield client


async def test_a_prefill_longer_than_the_first_byte_timeout_succeeds_at_the_first_try(gateway, long_prompt):
    url, local = gateway
    before = (await _stats(local))["batch"]
    async with _client(url) as client:
        stream = await client.chat.completions.create(
            model="demo", messages=long_prompt("Once upon a time"), max_tokens=4, temperature=0, stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    usage = chunks[-1].usage
    assert usage.prompt_tokens > PROMPT_TOKENS - 20 and usage.completion_tokens == 4
    after = (await _stats(local))["batch"]
    assert after["requests"] == before["requests"] + 1  # not retried from zero
    assert after["prompt_tokens"] - before["prompt_tokens"] == usage.prompt_tokens


async def test_a_prefill_cut_off_leaves_its_cache_for_the_retry(gateway, long_prompt):
    url, local = gateway
    for take in range(3):
        messages = long_prompt(f"A different story, take {take}")
        if await _cut_off_while_filling(url, local, messages):
            break
    else:
        pytest.fail("the hang-up never reached the worker before the prompt had filled")

    async with _client(url) as client:
        retry = await client.chat.completions.create(model="demo", messages=messages, max_tokens=1, temperature=0)
    cached = retry.usage.prompt_tokens_details.cached_tokens
    assert STEP <= cached < retry.usage.prompt_tokens


async def _cut_off_while_filling(url: str, local: LocalBackend, messages: list[dict]) -> bool:
    """Ask, and hang up once the prompt is filling; whether the cut came before the first token (a
    machine busy enough can let the prefill finish first)."""
    before = (await _stats(local))["batch"]
    body = {"model": "demo", "messages": messages, "max_tokens": 4, "temperature": 0, "stream": True}
    async with aiohttp.ClientSession() as session:
        asking = asyncio.create_task(session.post(url + "/v1/chat/completions", json=body))
        await _until(lambda: _busy(local))
        asking.cancel()  # the client gives up
        await asyncio.gather(asking, return_exceptions=True)
    after = (await _until(lambda: _idle(local)))["batch"]
    assert after["cancelled"] == before["cancelled"] + 1
    return after["generated_tokens"] == before["generated_tokens"]


async def _busy(local: LocalBackend):
    status = await _stats(local)
    return status if status["active_sequences"] else None


async def _idle(local: LocalBackend):
    status = await _stats(local)
    return None if status["active_sequences"] else status
