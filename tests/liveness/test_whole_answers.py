"""A non-streamed answer arrives in one piece once it is fully generated: the first-byte timer must
not cut it off, and one that does time out is not generated a second time by the same backend."""

from __future__ import annotations

import json

import pytest

from fakes.upstream import FakeAnthropic, FakeOpenAI, Reply, fake_upstream
from tests.failover.rig import client, flushed_rows, gateway_for, post
from tests.gateway.helpers import PAIR_IDS, PAIRS
from tests.liveness.helpers import MSG, answer_text

FAST = {"first_byte_timeout_s": 0.3, "idle_timeout_s": 0.3, "max_tries": 2}


@pytest.mark.parametrize(("client_kind", "up_kind"), PAIRS, ids=PAIR_IDS)
async def test_an_answer_slower_than_the_first_byte_timeout_is_waited_for_and_asked_once(client_kind, up_kind):
    async with fake_upstream(up_kind, Reply(text="worth the wait", delay_s=1.0)) as up:
        async with gateway_for({"p": (up_kind, up.url, FAST)}, [{"pattern": "m", "backend": "p"}]) as url:
            assert await answer_text(url, client_kind, stream=False) == "worth the wait"
    assert len(up.requests) == 1


async def test_an_answer_that_goes_silent_mid_body_moves_on_without_a_retry():
    silent = Reply(hang_after_headers=True)  # headers, then nothing: bytes had started to flow
    async with FakeOpenAI(silent, silent) as primary, FakeAnthropic(Reply(text="from the fallback")) as backup:
        backends = {"p": ("openai", primary.url, FAST), "b": ("anthropic", backup.url, FAST)}
        async with gateway_for(backends, [{"pattern": "m", "backend": "p", "fallbacks": ["b:claude-x"]}]) as url:
            r = await client(url).chat.completions.with_raw_response.create(model="m", messages=MSG)
            assert r.parse().choices[0].message.content == "from the fallback"
            assert r.headers["x-mlxgw-backend"] == "b:claude-x"
            attempts = json.loads((await flushed_rows())[-1].attempts)
    assert len(primary.requests) == 1
    assert attempts[0] == {"backend": "p", "model": "m", "tries": 1, "error": "answer_timeout"}


async def test_an_answer_is_bounded_by_the_request_deadline_and_asked_once():
    async with FakeOpenAI(Reply(hang=True), Reply(hang=True)) as primary:
        mappings = [{"pattern": "m", "backend": "p"}]
        async with gateway_for({"p": ("openai", primary.url, FAST)}, mappings, server={"request_deadline_s": 1.0}) as url:
            status, _, body = await post(url)
    assert status == 504
    assert "request deadline" in json.loads(body)["error"]["message"]
    assert len(primary.requests) == 1


async def test_a_hung_answer_moves_on_after_the_answer_timeout_without_a_retry():
    hung = Reply(hang=True)  # not even headers: a wedged upstream, or an answer far too slow
    async with FakeOpenAI(hung, hung) as primary, FakeAnthropic(Reply(text="from the fallback")) as backup:
        policy = {**FAST, "answer_timeout_s": 0.5}
        backends = {"p": ("openai", primary.url, policy), "b": ("anthropic", backup.url, FAST)}
        async with gateway_for(backends, [{"pattern": "m", "backend": "p", "fallbacks": ["b:claude-x"]}]) as url:
            r = await client(url).chat.completions.with_raw_response.create(model="m", messages=MSG)
            assert r.parse().choices[0].message.content == "from the fallback"
            attempts = json.loads((await flushed_rows())[-1].attempts)
    assert len(primary.requests) == 1
    assert attempts[0] == {"backend": "p", "model": "m", "tries": 1, "error": "answer_timeout"}
