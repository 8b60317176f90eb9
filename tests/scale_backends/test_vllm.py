"""A vLLM server as a backend (`type = "openai"`, base_url http://host:8000/v1, no key): both SDKs
as clients (Anthropic ones translated), its model list, its usage only when asked for, its flat
error shapes in each client's own protocol."""

from __future__ import annotations

import anthropic
import openai
import pytest

from fakes.upstream import FakeOpenAI, FakeVLLM, Reply, ToolCall, Usage
from tests.failover.rig import client, gateway_for
from tests.gateway.helpers import ask_anthropic, ask_openai

MODEL = "Qwen/Qwen3-8B"
MSG = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def _anthropic(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0, timeout=10)


async def test_openai_sdk_against_a_vllm_server():
    replies = [Reply(text="Hello there"), Reply(text="streamed words here", usage=Usage(input_tokens=11, output_tokens=3))]
    async with FakeVLLM(*replies) as vllm, gateway_for(
        {"vllm": ("openai", vllm.url, {})}, [{"pattern": "Qwen/*", "backend": "vllm"}]
    ) as url, client(url) as oa:
        assert MODEL in [m.id async for m in oa.models.list()]  # from vLLM's own /v1/models
        assert (await ask_openai(oa, stream=False, model=MODEL, messages=MSG)).text == "Hello there"
        streamed = await ask_openai(oa, stream=True, model=MODEL, messages=MSG)
        assert (streamed.text, streamed.input_tokens, streamed.output_tokens) == ("streamed words here", 11, 3)
        assert all("authorization" not in r.headers for r in vllm.requests)  # no key configured, none sent


async def test_anthropic_sdk_translated_to_a_vllm_server():
    weather = ToolCall("get_weather", {"city": "Paris"})
    replies = [Reply(text="Bonjour", usage=Usage(input_tokens=20, output_tokens=4)), Reply(tool_calls=[weather]),
               Reply(text="It is sunny", usage=Usage(input_tokens=40, output_tokens=3))]
    async with FakeVLLM(*replies) as vllm:
        # vLLM refuses an output limit its context cannot hold: the backend's ceiling keeps Claude Code's 128k under it.
        backends = {"vllm": ("openai", vllm.url, {"max_output_tokens": 4096})}
        async with gateway_for(backends, [{"pattern": "claude-*", "backend": "vllm", "model": MODEL}]) as url, _anthropic(url) as ac:
            streamed = await ask_anthropic(ac, stream=True, model="claude-sonnet-4-6", max_tokens=128000, messages=MSG)
            assert (streamed.text, streamed.output_tokens) == ("Bonjour", 4)
            sent = vllm.requests[-1].json
            assert (sent["model"], sent["max_tokens"], sent["stream_options"]) == (MODEL, 4096, {"include_usage": True})

            called = await ask_anthropic(ac, stream=True, model="claude-sonnet-4-6", max_tokens=200, messages=MSG, tools=TOOLS)
            (call_id, name, args), = called.tool_calls
            assert (name, args, called.finish) == ("get_weather", {"city": "Paris"}, "tool_use")
            follow = [*MSG, {"role": "assistant", "content": [{"type": "tool_use", "id": call_id, "name": name, "input": args}]},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny"}]}]
            final = await ask_anthropic(ac, stream=False, model="claude-sonnet-4-6", max_tokens=200, messages=follow, tools=TOOLS)
            assert (final.text, final.input_tokens, final.output_tokens, final.finish) == ("It is sunny", 40, 3, "end_turn")
            tool_message = vllm.requests[-1].json["messages"][-1]
            assert (tool_message["role"], tool_message["tool_call_id"], tool_message["content"]) == ("tool", call_id, "sunny")


async def test_vllm_errors_reach_each_client_in_its_own_protocol():
    bad = Reply(status=400, error_message="min_tokens must be less than or equal to max_tokens=10, got 50.")
    async with FakeVLLM(bad, bad) as vllm, FakeOpenAI(Reply(text="from the long-context model")) as big:
        backends = {"vllm": ("openai", vllm.url, {}), "big": ("openai", big.url, {})}
        mappings = [
            {"pattern": "long", "backend": "vllm", "model": MODEL, "fallbacks": ["big:gpt-4o"], "fallback_on": ["context_length"]},
            {"pattern": "*", "backend": "vllm"},
        ]
        async with gateway_for(backends, mappings) as url, client(url) as oa, _anthropic(url) as ac:
            with pytest.raises(openai.BadRequestError) as refused:
                await oa.chat.completions.create(model=MODEL, messages=MSG, max_tokens=10, extra_body={"min_tokens": 50})
            assert refused.value.body["message"] == bad.error_message  # vLLM's words, not its JSON
            with pytest.raises(anthropic.BadRequestError) as refused_a:
                await ac.messages.create(model=MODEL, max_tokens=10, messages=MSG)
            assert refused_a.value.body["error"] == {"type": "invalid_request_error", "message": bad.error_message}

            with pytest.raises(openai.NotFoundError) as unknown:
                await oa.chat.completions.create(model="Qwen/Qwen2-0.5B", messages=MSG)
            assert unknown.value.body["message"] == "The model `Qwen/Qwen2-0.5B` does not exist."

            # Over vLLM's context: its 400 says so in its own words, and the mapping falls back.
            huge = [{"role": "user", "content": "word " * 30000}]
            r = await oa.chat.completions.create(model="long", messages=huge)
            assert r.choices[0].message.content == "from the long-context model"
            assert len(vllm.requests) == 4 and len(big.requests) == 1
