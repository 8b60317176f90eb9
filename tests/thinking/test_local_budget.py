"""A thinking budget on the local worker: a model whose template opens `<think>` and that would
think forever has its thought closed after the budget's tokens, and the answer goes on."""

from __future__ import annotations

import openai
import pytest
from mlx_lm.utils import load_tokenizer

from mlxgw.wires.effort import BUDGETS
from tests.failover.rig import gateway_for
from tests.thinking.helpers import send
from tests.thinking.models import ANSWER, STEP

BUDGET = 8


def request(**extra) -> dict:
    return {"model": "endless", "max_tokens": 48, "messages": [{"role": "user", "content": "Think."}], **extra}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_the_thought_is_closed_at_the_budget(endless, stream):
    async with gateway_for({}, [{"pattern": "endless", "backend": "local", "model": str(endless)}]) as url:
        answer = await send(url, request(thinking={"type": "enabled", "budget_tokens": BUDGET}), stream=stream)

    thought, text = answer.content
    assert thought.type == "thinking" and text.type == "text"
    step_ids = load_tokenizer(endless).encode(STEP, add_special_tokens=False)
    assert load_tokenizer(endless).encode(" " + thought.thinking.strip(), add_special_tokens=False) == step_ids * BUDGET
    assert text.text.strip() == ANSWER.strip()
    assert answer.stop_reason == "end_turn"


async def test_without_a_budget_it_thinks_to_max_tokens(endless):
    async with gateway_for({}, [{"pattern": "endless", "backend": "local", "model": str(endless)}]) as url:
        answer = await send(url, request(), stream=False)

    assert [b.type for b in answer.content] == ["thinking"]
    assert answer.stop_reason == "max_tokens"


async def test_an_openai_clients_effort_is_the_local_budget(endless):
    """`reasoning_effort` and Responses `reasoning.effort` "low" are 1024 thinking tokens (wires.effort)."""
    budget, step_ids = BUDGETS["low"], load_tokenizer(endless).encode(STEP, add_special_tokens=False)
    async with gateway_for({}, [{"pattern": "endless", "backend": "local", "model": str(endless)}]) as url:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as c:
            chat = await c.chat.completions.create(
                model="endless", messages=[{"role": "user", "content": "Think."}], reasoning_effort="low", max_tokens=budget + 16
            )
            answer = await c.responses.create(
                model="endless", input="Think.", reasoning={"effort": "low", "summary": "auto"}, max_output_tokens=budget + 16
            )

    thoughts = [chat.choices[0].message.model_extra["reasoning_content"], answer.output[0].summary[0].text]
    for thought in thoughts:
        assert load_tokenizer(endless).encode(" " + thought.strip(), add_special_tokens=False) == step_ids * budget
    assert chat.choices[0].message.content.strip() == answer.output_text.strip() == ANSWER.strip()


async def test_reasoning_effort_none_closes_the_thought_at_once(endless):
    async with gateway_for({}, [{"pattern": "endless", "backend": "local", "model": str(endless)}]) as url:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as c:
            chat = await c.chat.completions.create(
                model="endless", messages=[{"role": "user", "content": "Think."}], reasoning_effort="none", max_tokens=16
            )

    assert not (chat.choices[0].message.model_extra or {}).get("reasoning_content")
    assert chat.choices[0].message.content.strip() == ANSWER.strip()
    assert chat.choices[0].finish_reason == "stop"
