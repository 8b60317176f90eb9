"""A Responses client answered by the local MLX worker on the offline demo model (random weights:
gibberish, so the shapes and the usage are what is checked), whole and streamed, async and sync."""

from __future__ import annotations

import asyncio

import openai

from tests.local.helpers import PROMPT, local_gateway

ASK = {"model": "demo", "input": PROMPT[0]["content"], "max_output_tokens": 12, "temperature": 0}


def texts(output) -> str:
    return "".join(part.text for item in output if item.type == "message" for part in item.content)


async def test_the_demo_model_whole_and_streamed(demo_dir):
    from mlx_lm.utils import load_tokenizer

    prompt_tokens = len(load_tokenizer(demo_dir).apply_chat_template(PROMPT, add_generation_prompt=True))
    async with local_gateway(demo_dir) as url:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
            whole = await client.responses.create(**ASK)
            events = [e async for e in await client.responses.create(stream=True, **ASK)]
            async with client.responses.stream(**ASK) as stream:
                helper = [e.type async for e in stream]

        def sync_call():
            with openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as sync:
                return sync.responses.create(**ASK)

        from_sync = await asyncio.to_thread(sync_call)

    # Twelve tokens of gibberish cannot end the answer: it is cut at max_output_tokens.
    assert whole.status == "incomplete" and whole.incomplete_details.reason == "max_output_tokens"
    assert {item.type for item in whole.output} <= {"reasoning", "message"}
    assert whole.usage.output_tokens == 12
    assert whole.usage.input_tokens == prompt_tokens
    assert whole.usage.total_tokens == prompt_tokens + 12

    final = events[-1]
    assert final.type == "response.incomplete" and final.response.usage.output_tokens == 12
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert texts(final.response.output) == texts(whole.output)  # temperature 0: the same answer streamed
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == texts(whole.output)
    assert helper[0] == "response.created" and helper[-1] == "response.incomplete"
    assert texts(from_sync.output) == texts(whole.output)
