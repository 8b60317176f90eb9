"""A thinking budget on the local worker: a model whose template opens `<think>` and that would
think forever has its thought closed after the budget's tokens, and the answer goes on."""

from __future__ import annotations

import pytest
from mlx_lm.utils import load_tokenizer

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
