"""With tool choice auto, a call the local model opens is held to the schema of a `strict` tool,
and only of a strict one: a demo model scripted to call a tool with an argument out of range."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest

from tests.local.helpers import PROMPT, clients, local_gateway
from tests.scripted_model import scripted_model

WAIT_S = 60
DAYS = {
    "type": "object",
    "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["days"],
    "additionalProperties": False,
}
HEAD = '{"name":"forecast","arguments":{"days":'
# The model writes days 9; a strict forecast tool allows 1 to 7.
ANSWER = f"Sure.<tool_call>{HEAD}9}}}}</tool_call>"


@pytest.fixture(scope="module")
def caller(tmp_path_factory, demo_dir):
    return scripted_model(demo_dir, tmp_path_factory.mktemp("models") / "caller", ANSWER, words=(HEAD, "9}}"))


def tools(strict: bool) -> list[dict]:
    function = {"name": "forecast", "description": "Forecast", "parameters": DAYS, "strict": strict}
    return [{"type": "function", "function": function}]


async def test_a_call_of_a_strict_tool_holds_to_its_schema(caller):
    async with local_gateway(caller) as url:
        oa, an = clients(url)
        async with asyncio.timeout(WAIT_S):
            free = await oa.chat.completions.create(model="demo", messages=PROMPT, max_tokens=24, tools=tools(False))
            (call,) = free.choices[0].message.tool_calls
            assert json.loads(call.function.arguments) == {"days": 9}  # as the model wrote it

            held = await oa.chat.completions.create(model="demo", messages=PROMPT, max_tokens=24, tools=tools(True))
            message = held.choices[0].message
            assert message.content.startswith("Sure.")  # free text before the call
            (call,) = message.tool_calls
            assert call.function.name == "forecast"
            jsonschema.validate(json.loads(call.function.arguments), DAYS)

            m = await an.messages.create(
                model="demo",
                max_tokens=24,
                messages=PROMPT,
                tools=[{"name": "forecast", "description": "Forecast", "input_schema": DAYS, "strict": True}],
            )
            (use,) = [b for b in m.content if b.type == "tool_use"]
            jsonschema.validate(use.input, DAYS)
