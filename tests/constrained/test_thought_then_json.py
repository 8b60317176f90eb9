"""A thought the chat template opens is finished before a constrained answer: a demo model whose
template opens `<think>` and which would think forever gets its thought closed by the thinking
budget, then answers JSON that validates. Both logits processors act on one sequence."""

from __future__ import annotations

import asyncio
import json

import anthropic
import jsonschema

from tests.local.helpers import local_gateway
from tests.thinking.models import STEP, endless_thinker

SCHEMA = {
    "type": "object",
    "properties": {"ready": {"type": "boolean"}, "steps": {"type": "integer", "minimum": 0, "maximum": 99}},
    "required": ["ready", "steps"],
    "additionalProperties": False,
}


async def test_the_thought_then_the_json(tmp_path, demo_dir):
    model = endless_thinker(demo_dir, tmp_path / "endless")
    async with local_gateway(model) as url:
        async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0) as c, asyncio.timeout(60):
            m = await c.messages.create(
                model="demo",
                max_tokens=64,
                messages=[{"role": "user", "content": "Think, then answer."}],
                thinking={"type": "enabled", "budget_tokens": 8},
                extra_body={"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
            )
    thought, text = m.content
    assert thought.type == "thinking" and thought.thinking.strip().startswith(STEP.strip())
    jsonschema.validate(json.loads(text.text), SCHEMA)
    assert m.stop_reason == "end_turn"
