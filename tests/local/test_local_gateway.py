"""The local MLX backend behind the real gateway, driven with the official SDKs on the demo model."""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
import openai
import pytest

from fakes.upstream import FakeOpenAI, Reply
from tests.local.helpers import PROMPT, clients, local_gateway, status


async def test_both_apis_stream_and_not_with_exact_usage(demo_dir):
    from mlx_lm.utils import load_tokenizer

    expected_prompt = len(load_tokenizer(demo_dir).apply_chat_template(PROMPT, add_generation_prompt=True))
    async with local_gateway(demo_dir) as url:
        oa, an = clients(url)
        r = await oa.chat.completions.create(model="demo", messages=PROMPT, max_tokens=12, temperature=0)
        assert r.usage.prompt_tokens == expected_prompt and r.usage.completion_tokens == 12
        assert r.choices[0].finish_reason == "length" and r.choices[0].message.content

        stream = await oa.chat.completions.create(
            model="demo", messages=PROMPT, max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == r.choices[0].message.content  # temperature 0: the same answer streamed
        assert chunks[-1].usage.completion_tokens == 12 and chunks[-1].usage.prompt_tokens == expected_prompt

        m = await an.messages.create(model="demo", max_tokens=12, messages=PROMPT, extra_body={"temperature": 0})
        assert m.content[0].text == text and m.stop_reason == "max_tokens"
        assert m.usage.output_tokens == 12
        async with an.messages.stream(model="demo", max_tokens=12, messages=PROMPT, extra_body={"temperature": 0}) as s:
            final = await s.get_final_message()
        assert final.content[0].text == text
        assert final.usage.output_tokens == 12
        # Input tokens as Anthropic counts them: the uncached part plus what the prompt cache served.
        assert final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0) == expected_prompt


async def test_stop_string_and_seed_through_the_sdk(demo_dir):
    async with local_gateway(demo_dir) as url:
        oa, an = clients(url)
        base = await oa.chat.completions.create(model="demo", messages=PROMPT, max_tokens=30, temperature=0)
        text = base.choices[0].message.content
        stop = text[len(text) // 2 : len(text) // 2 + 3]
        cut = text[: text.index(stop)]
        m = await an.messages.create(model="demo", max_tokens=30, messages=PROMPT, extra_body={"temperature": 0}, stop_sequences=[stop])
        assert m.stop_reason == "stop_sequence" and m.stop_sequence == stop
        assert "".join(b.text for b in m.content if b.type == "text") == cut

        seeded = [
            (await oa.chat.completions.create(model="demo", messages=PROMPT, max_tokens=20, temperature=1.0, seed=7)).choices[0].message.content
            for _ in range(2)
        ]
        assert seeded[0] == seeded[1]


async def test_cancelled_stream_leaves_the_batch(demo_dir):
    async with local_gateway(demo_dir) as url:
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/chat/completions", json={"model": "demo", "messages": PROMPT, "max_tokens": 100000, "stream": True}) as r:
                await r.content.readline()
                assert (await status(url))["active_sequences"] == 1
            # The client is gone: its sequence must leave the batch promptly.
            for _ in range(100):
                if (await status(url))["active_sequences"] == 0:
                    break
                await asyncio.sleep(0.05)
            assert (await status(url))["active_sequences"] == 0


async def test_eight_concurrent_requests_decode_in_one_batch(demo_dir):
    async with local_gateway(demo_dir) as url:
        oa, _ = clients(url)
        await oa.chat.completions.create(model="demo", messages=PROMPT, max_tokens=1)  # load the model first
        results = await asyncio.gather(
            # Long enough answers that all eight overlap even on a loaded machine.
            *[oa.chat.completions.create(model="demo", messages=[{"role": "user", "content": f"prompt {i}"}], max_tokens=600) for i in range(8)]
        )
        assert all(r.usage.completion_tokens > 0 for r in results)
        assert (await status(url))["batch"]["max_batch_size"] >= 4


async def test_worker_killed_mid_request(demo_dir):
    # One try per backend, so a request the crash catches before its first byte goes to the fallback
    # (with more tries it would be retried on the restarted worker).
    async with FakeOpenAI(Reply(text="fallback answer")) as fb, local_gateway(demo_dir, fb.url, {"max_tries": 1}) as url:
        oa, _ = clients(url)
        await oa.chat.completions.create(model="demo", messages=PROMPT, max_tokens=1)
        pid = (await status(url))["pid"]
        async with aiohttp.ClientSession() as s:
            streaming = await s.post(url + "/v1/chat/completions", json={"model": "demo", "messages": PROMPT, "max_tokens": 100000, "stream": True})
            await streaming.content.readline()  # mid-stream
            os.kill(pid, signal.SIGSTOP)  # frozen: the next request cannot get its first byte
            waiting = asyncio.create_task(oa.chat.completions.with_raw_response.create(model="demo", messages=PROMPT, max_tokens=5))
            await asyncio.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            rest = (await asyncio.wait_for(streaming.read(), 30)).decode()
            streaming.release()
        frames = [f for f in rest.strip().split("\n\n") if f]
        assert '"error"' in frames[-1] and "[DONE]" not in rest  # a protocol error frame, not a silent end
        served = await asyncio.wait_for(waiting, 30)
        assert served.headers["x-mlxgw-backend"] == "fb:backup-model"
        assert served.parse().choices[0].message.content == "fallback answer"
        # The worker comes back and the next request is local again.
        again = await oa.chat.completions.with_raw_response.create(model="demo", messages=PROMPT, max_tokens=3)
        assert again.headers["x-mlxgw-backend"].startswith("local:")
        assert (await status(url))["pid"] != pid


@pytest.mark.parametrize("model", ["/etc/passwd", "../../demo", "~/.ssh/id_rsa"])
async def test_a_path_in_model_loads_nothing(demo_dir, model):
    async with local_gateway(demo_dir) as url:
        oa, _ = clients(url)
        with pytest.raises(openai.NotFoundError):
            await oa.chat.completions.create(model=model, messages=PROMPT, max_tokens=1)
        local = await status(url)
        assert not local or not local.get("models")
