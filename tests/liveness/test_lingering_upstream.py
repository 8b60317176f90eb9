"""An upstream that has sent its whole stream (`[DONE]`, `message_stop`) but keeps the connection
open a while: the answer is complete, so the client gets its end at once, not when the upstream
finally closes, and never a timeout error after (or instead of) a finished answer."""

from __future__ import annotations

import time

import pytest

from fakes.upstream import Reply, fake_upstream
from tests.failover.rig import gateway_for
from tests.gateway.helpers import PAIR_IDS, PAIRS
from tests.liveness.helpers import answer_text

POLICY = {"first_byte_timeout_s": 5, "idle_timeout_s": 1, "max_tries": 1}
LINGER_S = 4.0  # longer than the idle timeout: the upstream ends its connection only after it


@pytest.mark.parametrize(("client", "up_kind"), PAIRS, ids=PAIR_IDS)
async def test_a_finished_stream_ends_at_once_though_the_upstream_keeps_its_connection(client, up_kind):
    async with fake_upstream(up_kind, Reply(text="all done here", linger_s=LINGER_S)) as up:
        async with gateway_for({"p": (up_kind, up.url, POLICY)}, [{"pattern": "m", "backend": "p"}]) as url:
            started = time.monotonic()
            text = await answer_text(url, client, stream=True)
            took = time.monotonic() - started
    assert text == "all done here"
    assert took < POLICY["idle_timeout_s"], f"the client waited {took:.1f} s for an answer the upstream had finished"
