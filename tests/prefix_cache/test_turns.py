"""Within a conversation: the next turn reads the previous turn's prompt and answer from the cache,
as the chat template renders them, so it prefills only its new message."""

from __future__ import annotations

from mlxgw.canonical import collect
from tests.prefix_cache.helpers import answer, follow_up, history_tokens, prompt_tokens, run, session, worker


async def test_the_next_turn_prefills_only_its_new_message(demo_dir, demo_tokenizer):
    async with worker(demo_dir) as local:
        first = session("Which files does the project have?")
        reply = await answer(local, first)
        second = follow_up(first, reply, "Open the first one.")
        start = (await run(local, second))[0]

    prompt = prompt_tokens(demo_tokenizer, second)
    # The first turn as the second holds it: the answer re-rendered by the template (its text
    # re-tokenised, closing tokens the model never generated).
    history = history_tokens(demo_tokenizer, second)
    assert prompt[: len(history)] == history
    assert start.input_tokens + start.cache_read_tokens == len(prompt)
    assert start.cache_read_tokens == len(history)
    assert start.cache_read_tokens >= 0.95 * len(prompt)


async def test_every_turn_of_a_conversation_reads_all_before_it(demo_dir, demo_tokenizer):
    async with worker(demo_dir) as local:
        request = session("Run the tests.")
        reply = await answer(local, request)
        for text in ("Now fix the first failure.", "And run them again."):
            request = follow_up(request, reply, text)
            events = await run(local, request)
            assert events[0].cache_read_tokens == len(history_tokens(demo_tokenizer, request))
            reply = collect(events)
