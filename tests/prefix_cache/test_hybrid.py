"""A model whose cache has recurrent state (here a small LFM2) cannot trim a longer cached prompt back
to a shorter prefix: only caches of exact prefixes serve it. The worker keeps the cache where later
prompts start the same way: at the end of the shared head (system turn and tools) and before each
prompt's last token, so the next turn, a second session and a repeat still reuse the prompt."""

from __future__ import annotations

from tests.prefix_cache.helpers import (
    answer,
    follow_up,
    prompt_tokens,
    run,
    session,
    shared,
    worker,
    written,
)


async def test_the_next_turn_reads_the_whole_previous_prompt(hybrid_dir, demo_tokenizer):
    async with worker(hybrid_dir) as local:
        first = session("Which files does the project have?")
        reply = await answer(local, first)
        # The answer comes back as the template renders it, not as generated: here cut short, as
        # a stop string or a client's edit leaves it.
        text = reply.content[0].text
        reply.content[0].text = text[: len(text) // 2]
        second = follow_up(first, reply, "Open the first one.")
        start = (await run(local, second))[0]
    prompt = prompt_tokens(demo_tokenizer, second)
    assert start.cache_read_tokens >= len(prompt_tokens(demo_tokenizer, first)) - 1
    assert start.cache_read_tokens >= 0.95 * len(prompt)


async def test_a_second_session_reads_the_shared_head_and_a_repeat_all_but_one_token(hybrid_dir, demo_tokenizer):
    first, second = session("Which files does the project have?"), session("Why does the build fail?")
    head = shared(prompt_tokens(demo_tokenizer, first), prompt_tokens(demo_tokenizer, second))
    async with worker(hybrid_dir) as local:
        await run(local, first)
        other = (await run(local, second))[0]
        again = (await run(local, first))[0]
    # The head as the template renders the system turn alone: all the sessions have in common
    # but the few tokens that open the user's turn.
    assert head - 5 <= other.cache_read_tokens <= head
    assert again.cache_read_tokens == len(prompt_tokens(demo_tokenizer, first)) - 1


async def test_its_caches_survive_a_restart_too(hybrid_dir, demo_tokenizer):
    request = session("Add a test for the parser.")
    prompt = len(prompt_tokens(demo_tokenizer, request))
    async with worker(hybrid_dir) as local:
        await run(local, request)
        assert (await written(local))["save_failures"] == 0
    async with worker(hybrid_dir) as local:
        start = (await run(local, request))[0]
    assert start.cache_read_tokens == prompt - 1
