"""Progress is liveness: an upstream that sends keep-alives (Anthropic pings, SSE comments) for
longer than first_byte_timeout_s before its first token is waited for and asked only once; the
keep-alives never count as the first byte."""

from __future__ import annotations

import pytest

from fakes.upstream import Reply
from tests.failover.rig import gateway_for
from tests.gateway.helpers import PAIR_IDS, PAIRS
from tests.liveness.helpers import THINKING, answer_text

# Silent for 0.3 s at most, but thinking for 0.8 s (a keep-alive every 0.1 s) before answering.
POLICY = {"first_byte_timeout_s": 0.3, "idle_timeout_s": 1, "max_tries": 2}
THINKS = {"keepalives": 8}


@pytest.mark.parametrize(("client", "up_kind"), PAIRS, ids=PAIR_IDS)
async def test_keepalives_before_the_first_token_keep_the_wait_open(client, up_kind):
    async with THINKING[up_kind](Reply(text=["thought ", "it ", "over"], chunk_delay_s=0.1), **THINKS) as up:
        async with gateway_for({"p": (up_kind, up.url, POLICY)}, [{"pattern": "m", "backend": "p"}]) as url:
            assert await answer_text(url, client, stream=True) == "thought it over"
    assert len(up.requests) == 1


async def test_keepalives_are_not_a_first_byte_so_a_silent_answer_still_fails_over():
    # Keep-alives, then the stream dies before any content: nothing was produced, the fallback answers.
    dies = Reply(text=["never ", "seen"], chunk_delay_s=0.1, die_after_chunks=THINKS["keepalives"] + 1)
    async with THINKING["anthropic"](dies, dies, **THINKS) as primary, THINKING["openai"](Reply(text="fallback")) as backup:
        backends = {"p": ("anthropic", primary.url, POLICY), "b": ("openai", backup.url, POLICY)}
        mappings = [{"pattern": "m", "backend": "p", "fallbacks": ["b"]}]
        async with gateway_for(backends, mappings) as url:
            assert await answer_text(url, "openai", stream=True) == "fallback"
    assert len(primary.requests) == 2  # a retry, then the next backend: nothing had been sent
