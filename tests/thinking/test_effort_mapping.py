"""Reasoning effort translated between the APIs by the one table in `wires.effort`: what each kind
of upstream receives when a client of another kind asks for reasoning."""

from __future__ import annotations

import contextlib

import anthropic
import openai
import pytest

from fakes import FakeAnthropic, FakeOpenAI, FakeResponses
from tests.failover.rig import gateway_for

MAX_TOKENS = 40000  # above every budget, so that none is cut to fit
# (OpenAI level, Anthropic budget): the budget each level reads as, and the level it writes back as
TABLE = [("low", 1024), ("medium", 4096), ("high", 16384), ("xhigh", 32768)]


@contextlib.asynccontextmanager
async def rig():
    async with FakeOpenAI() as oa, FakeResponses() as rs, FakeAnthropic() as an:
        backends = {"oa": ("openai", oa.url, {}), "rs": ("responses", rs.url, {}), "an": ("anthropic", an.url, {})}
        mappings = [
            {"pattern": "to-chat", "backend": "oa", "model": "o4-mini"},
            {"pattern": "to-responses", "backend": "rs", "model": "gpt-5"},
            {"pattern": "to-anthropic", "backend": "an", "model": "claude-sonnet-4-6"},
        ]
        async with gateway_for(backends, mappings) as url:
            yield url, {"to-chat": oa, "to-responses": rs, "to-anthropic": an}


def received(up) -> dict:
    return up.requests[-1].json


async def ask_anthropic(url: str, model: str, **fields) -> None:
    async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0) as c:
        await c.messages.create(
            model=model, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": "q"}], timeout=10, **fields
        )


@pytest.mark.parametrize(("level", "budget"), TABLE)
async def test_an_openai_clients_effort_reaches_each_kind(level, budget):
    async with rig() as (url, ups):
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as c:
            chat = {"messages": [{"role": "user", "content": "q"}], "reasoning_effort": level, "max_tokens": MAX_TOKENS}
            await c.chat.completions.create(model="to-anthropic", **chat)
            await c.chat.completions.create(model="to-responses", **chat)
            await c.responses.create(model="to-chat", input="q", reasoning={"effort": level}, max_output_tokens=MAX_TOKENS)
            await c.responses.create(model="to-anthropic", input="q", reasoning={"effort": level}, max_output_tokens=MAX_TOKENS)

    assert received(ups["to-anthropic"])["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert received(ups["to-responses"])["reasoning"]["effort"] == level
    assert received(ups["to-chat"])["reasoning_effort"] == level
    assert ups["to-anthropic"].requests[0].json["thinking"] == {"type": "enabled", "budget_tokens": budget}


@pytest.mark.parametrize(("level", "budget"), TABLE)
async def test_an_anthropic_budget_reaches_openai_kinds_as_its_level(level, budget):
    async with rig() as (url, ups):
        for model in ("to-chat", "to-responses"):
            await ask_anthropic(url, model, thinking={"type": "enabled", "budget_tokens": budget})

    assert received(ups["to-chat"])["reasoning_effort"] == level
    assert received(ups["to-responses"])["reasoning"]["effort"] == level


@pytest.mark.parametrize(("effort", "level"), [("low", "low"), ("medium", "medium"), ("high", "high"), ("max", "xhigh")])
async def test_adaptive_thinkings_effort_reaches_responses_but_asks_chat_completions_for_nothing(effort, level):
    async with rig() as (url, ups):
        for model in ("to-chat", "to-responses"):
            await ask_anthropic(url, model, thinking={"type": "adaptive"}, extra_body={"output_config": {"effort": effort}})

    assert received(ups["to-responses"])["reasoning"]["effort"] == level
    assert "reasoning_effort" not in received(ups["to-chat"])


async def test_no_reasoning_asked_for_is_none_where_the_api_has_it_and_no_thinking_for_anthropic():
    async with rig() as (url, ups):
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as c:
            chat = {"messages": [{"role": "user", "content": "q"}], "reasoning_effort": "none"}
            await c.chat.completions.create(model="to-anthropic", **chat)
            await c.chat.completions.create(model="to-responses", **chat)
            await c.responses.create(model="to-chat", input="q", reasoning={"effort": "none"})

    assert "thinking" not in received(ups["to-anthropic"])
    assert received(ups["to-responses"])["reasoning"] == {"effort": "none"}
    assert received(ups["to-chat"])["reasoning_effort"] == "none"
