"""Cached prompt tokens as each protocol reports them, read by the official SDKs from the local
demo model through the daemon: two requests share a long head, the second reports what the
worker's status says it reused, and input plus cached is the whole prompt in the protocol's own
convention (OpenAI's prompt and input tokens include the cached ones; Anthropic's input excludes
them). The local cache is automatic and free, so nothing is reported as a cache write."""

from __future__ import annotations

import aiohttp
import anthropic
import openai
import pytest

from tests.prefix_cache.helpers import WAIT_S, gateway, prose

FIRST, SECOND = "Which files does the project have?", "Why does the build fail?"
ASK = {"model": "demo", "temperature": 0}


async def _chat(url: str, system: str, question: str, stream: bool) -> tuple[int, int]:
    """(whole prompt, cached) from Chat Completions."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=WAIT_S) as client:
        if not stream:
            usage = (await client.chat.completions.create(messages=messages, max_tokens=4, **ASK)).usage
        else:
            chunks = await client.chat.completions.create(
                messages=messages, max_tokens=4, stream=True, stream_options={"include_usage": True}, **ASK
            )
            usage = [chunk async for chunk in chunks][-1].usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    return usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens


async def _messages(url: str, system: str, question: str, stream: bool) -> tuple[int, int]:
    """(whole prompt, cached) from Anthropic Messages; a stream's message_start says it first."""
    ask = {"system": system, "messages": [{"role": "user", "content": question}], "max_tokens": 4, "model": "demo"}
    async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0, timeout=WAIT_S) as client:
        if not stream:
            usage = (await client.messages.create(**ask, extra_body={"temperature": 0})).usage
        else:
            events = [e async for e in await client.messages.create(**ask, stream=True, extra_body={"temperature": 0})]
            start = events[0].message.usage
            (delta,) = [e for e in events if e.type == "message_delta"]
            assert (delta.usage.cache_read_input_tokens or 0) == start.cache_read_input_tokens
            assert delta.usage.output_tokens == 4
            usage = start
    assert usage.cache_creation_input_tokens == 0
    return usage.input_tokens + usage.cache_read_input_tokens, usage.cache_read_input_tokens


async def _responses(url: str, system: str, question: str, stream: bool) -> tuple[int, int]:
    """(whole prompt, cached) from the Responses API."""
    ask = {"instructions": system, "input": question, "max_output_tokens": 4, **ASK}
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=WAIT_S) as client:
        if not stream:
            usage = (await client.responses.create(**ask)).usage
        else:
            usage = [e async for e in await client.responses.create(stream=True, **ask)][-1].response.usage
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    return usage.input_tokens, usage.input_tokens_details.cached_tokens


async def _reused(http: aiohttp.ClientSession, url: str) -> int:
    """Prompt tokens the worker's status says it has read from its caches, memory and disk."""
    async with http.get(url + "/mlxgw/status") as r:
        cache = ((await r.json())["local"] or {}).get("prompt_cache")
    return cache["tokens_reused"] + cache["disk_tokens_reused"] if cache else 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("ask", [_chat, _messages, _responses], ids=["chat", "messages", "responses"])
async def test_the_second_request_reports_what_the_worker_reused(demo_dir, demo_tokenizer, ask, stream):
    system = "You are a coding agent. " + prose(1400, seed=7)

    def prompt_size(question: str) -> int:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        return len(demo_tokenizer.apply_chat_template(messages, add_generation_prompt=True))

    async with gateway(demo_dir) as url, aiohttp.ClientSession() as http:
        seen = []
        for question in (FIRST, SECOND):
            before = await _reused(http, url)
            whole, cached = await ask(url, system, question, stream)
            seen.append(cached)
            assert whole == prompt_size(question)
            assert cached == await _reused(http, url) - before

    assert seen[0] < 100 < 1000 < seen[1]
