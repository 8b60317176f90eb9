"""Across sessions and sub-agents: prompts that share a long head (the system prompt and tools) but
differ after it reuse the head, and the small requests agents interleave (titles, summaries) do
not push it out of the cache's budget."""

from __future__ import annotations

from tests.prefix_cache.helpers import cache_status, chat, prompt_tokens, prose, run, session, shared, worker

# Room for one session's cache and a few small ones: the demo model keeps 128 bytes a token.
BUDGET_GB = 260_000 / 2**30


async def test_a_second_session_reuses_the_head_after_small_requests_came_between(demo_dir, demo_tokenizer):
    first, second = session("Which files does the project have?"), session("Why does the build fail?")
    head = shared(prompt_tokens(demo_tokenizer, first), prompt_tokens(demo_tokenizer, second))
    assert head > 1000

    async with worker(demo_dir, prompt_cache_gb=BUDGET_GB) as local:
        await run(local, first)
        # A title request, a summary, a quota check...: each small, each cached, together more
        # than the budget holds beside the session.
        for i in range(12):
            await run(local, chat("Write a title for: " + prose(60, seed=100 + i), max_tokens=4))
        start = (await run(local, second))[0]
        assert start.cache_read_tokens >= head
        status = await cache_status(local)

    assert status["memory_bytes"] <= BUDGET_GB * 2**30
    assert status["evictions"] > 0  # the budget was really reached
