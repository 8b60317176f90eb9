"""Streams keep their clients alive while nothing flows: SSE comments while the first byte is slow
(the 200 is committed once the wait passes `keepalive_s`, and the dispatcher goes on walking the
chain), and between slow chunks an Anthropic `ping` (after message_start) or an SSE comment."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from fakes.upstream import FakeOpenAI, Reply, fake_upstream
from tests.failover.rig import gateway_for
from tests.gateway.helpers import ANTHROPIC_HEADERS, OPENAI_HEADERS, PAIR_IDS, PAIRS, post
from tests.liveness.helpers import KEEPALIVE, PATHS, answer_text, body_for

SERVER = {"keepalive_s": 0.1}
POLICY = {"first_byte_timeout_s": 5, "idle_timeout_s": 5, "max_tries": 1}
HEADERS = {"openai": OPENAI_HEADERS, "anthropic": ANTHROPIC_HEADERS}
# Nothing for half a second, then words a quarter of a second apart.
SLOW = {"text": ["slow ", "and ", "steady"], "delay_s": 0.5, "chunk_delay_s": 0.25}


def _frames(body: bytes) -> list[bytes]:
    return [f for f in body.split(b"\n\n") if f]


def _text(client: str, frame: bytes) -> str:
    data = next((line[5:].strip() for line in frame.split(b"\n") if line.startswith(b"data:")), b"")
    if not data or data == b"[DONE]":
        return ""
    payload = json.loads(data)
    if client == "openai":
        return "".join(c["delta"].get("content") or "" for c in payload.get("choices", []))
    return payload.get("delta", {}).get("text", "") if payload.get("type") == "content_block_delta" else ""


@pytest.mark.parametrize(("client", "up_kind"), PAIRS, ids=PAIR_IDS)
async def test_keepalives_fill_a_slow_first_byte_and_the_gaps_between_chunks(client, up_kind):
    async with fake_upstream(up_kind, Reply(**SLOW)) as up:
        async with gateway_for({"p": (up_kind, up.url, POLICY)}, [{"pattern": "m", "backend": "p"}], server=SERVER) as url:
            r = await post(url + PATHS[client], body_for(client), headers=HEADERS[client])
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    frames = _frames(r.body)
    texts = [_text(client, f) for f in frames]
    assert "".join(texts) == "slow and steady"

    first = next(i for i, f in enumerate(frames) if not f.startswith(b":"))
    assert first >= 2 and all(f == KEEPALIVE for f in frames[:first])  # comments only, before anything

    start, end = texts.index("slow "), texts.index("steady")
    between = frames[start + 1 : end]
    # Our own ping follows message_start in a translated Anthropic stream; relayed bytes get comments.
    keepalive = b"event: ping" if client == "anthropic" and up_kind == "openai" else KEEPALIVE
    assert sum(f.startswith(keepalive) for f in between) >= 2


@pytest.mark.parametrize(("client", "up_kind"), [("openai", "anthropic"), ("anthropic", "openai")])
async def test_sdks_that_give_up_after_a_silent_moment_read_the_whole_stream(client, up_kind):
    # The first byte is 0.8 s away and the clients wait 0.4 s at most: only keep-alives hold them.
    async with fake_upstream(up_kind, Reply(**{**SLOW, "delay_s": 0.8})) as up:
        async with gateway_for({"p": (up_kind, up.url, POLICY)}, [{"pattern": "m", "backend": "p"}], server=SERVER) as url:
            assert await answer_text(url, client, stream=True, read_timeout=0.4) == "slow and steady"


@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_a_failure_after_the_keepalives_began_is_an_error_event(client):
    late_failure = Reply(status=503, delay_s=0.5)
    async with FakeOpenAI(Reply(status=400), late_failure, late_failure) as up:
        async with gateway_for({"p": ("openai", up.url, POLICY)}, [{"pattern": "m", "backend": "p"}], server=SERVER) as url:
            quick = await post(url + PATHS[client], body_for(client), headers=HEADERS[client])
            assert quick.status == 400  # failed before a keep-alive was due: a real HTTP status
            assert quick.headers["content-type"].startswith("application/json")

            r = await post(url + PATHS[client], body_for(client), headers=HEADERS[client])
            assert r.status == 200
            frames = _frames(r.body)
            assert frames[0] == KEEPALIVE and all(f == KEEPALIVE for f in frames[:-1])
            if client == "openai":
                assert set(json.loads(frames[-1].removeprefix(b"data: "))) == {"error"}
                with pytest.raises(openai.APIError):
                    await answer_text(url, client, stream=True)
            else:
                assert frames[-1].startswith(b"event: error\n")
                with pytest.raises(anthropic.APIStatusError):
                    await answer_text(url, client, stream=True)
    assert [req.json["model"] for req in up.requests] == ["m"] * 3


async def test_a_zero_interval_sends_no_keepalives():
    async with fake_upstream("openai", Reply(**SLOW)) as up:
        async with gateway_for({"p": ("openai", up.url, POLICY)}, [{"pattern": "m", "backend": "p"}], server={"keepalive_s": 0}) as url:
            r = await post(url + PATHS["openai"], body_for("openai"), headers=HEADERS["openai"])
    assert r.status == 200 and KEEPALIVE not in r.body
