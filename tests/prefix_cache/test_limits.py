"""Limits agents understand, through the real gateway: a prompt longer than the local model takes is
refused before generation in each protocol's own shape (Anthropic's words, which make Claude Code
compact; OpenAI's code); count_tokens counts what the worker then reports as input; a request with
no output limit stops at [local] default_max_tokens."""

from __future__ import annotations

import aiohttp
import anthropic
import openai

from tests.prefix_cache.helpers import SYSTEM, WAIT_S, gateway, prose
from tests.worker.helpers import short_context_copy

CONTEXT = 1024
TOOLS = [
    {
        "name": "read_file",
        "description": "Read a file from the workspace.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }
]


async def test_a_prompt_too_long_is_refused_in_each_protocols_shape(demo_dir, demo_tokenizer, tmp_path):
    model = short_context_copy(demo_dir, tmp_path / "short", CONTEXT)
    long = prose(2 * CONTEXT)
    messages = [{"role": "user", "content": long}]
    tokens = len(demo_tokenizer.apply_chat_template(messages, add_generation_prompt=True))
    message = f"prompt is too long: {tokens} tokens > {CONTEXT - 1} maximum"

    async with gateway(model) as url, aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/messages", json={"model": "demo", "max_tokens": 8, "messages": messages}) as r:
            assert r.status == 400
            body = await r.json()
        assert body["type"] == "error"
        assert body["error"] == {"type": "invalid_request_error", "message": message}

        async with http.post(url + "/v1/chat/completions", json={"model": "demo", "messages": messages}) as r:
            assert r.status == 400
            body = await r.json()
        assert body["error"]["message"] == message
        assert (body["error"]["type"], body["error"]["code"]) == ("invalid_request_error", "context_length_exceeded")

        # The SDKs raise it as the bad request it is, streamed or not.
        async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0, timeout=WAIT_S) as client:
            try:
                async with client.messages.stream(model="demo", max_tokens=8, messages=messages) as stream:
                    await stream.get_final_message()
            except anthropic.BadRequestError as e:
                assert e.body["error"]["message"] == message
            else:
                raise AssertionError("a prompt too long was answered")


async def test_count_tokens_is_what_the_worker_reports_as_input(demo_dir):
    ask = {
        "model": "demo",
        "system": SYSTEM[:2000],
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "Read the README."},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "README.md"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "# mlxgw"}]},
        ],
    }
    async with gateway(demo_dir) as url:
        async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0, timeout=WAIT_S) as client:
            counted = (await client.messages.count_tokens(**ask)).input_tokens
            usage = (await client.messages.create(**ask, max_tokens=2)).usage
            bare = (await client.messages.count_tokens(**{**ask, "tools": []})).input_tokens
    assert counted == usage.input_tokens + usage.cache_read_input_tokens
    assert counted > bare  # the tools are counted, as the template renders them


async def test_a_request_without_an_output_limit_stops_at_the_default(demo_dir):
    async with gateway(demo_dir, {"default_max_tokens": 7}) as url:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=WAIT_S) as client:
            r = await client.chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "Tell me about the weather"}], temperature=0
            )
    assert (r.usage.completion_tokens, r.choices[0].finish_reason) == (7, "length")
