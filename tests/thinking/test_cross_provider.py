"""Thinking that survives a change of provider: a Claude Code conversation whose thinking came from
the local model (or from an OpenAI-compatible server's reasoning) carries mlxgw's signature, and
when it goes on to Anthropic (a fake that refuses signatures it did not mint, in Anthropic's words)
those blocks are left out, so the turn gets a 200. A block whose text was changed is not taken for
mlxgw's: it goes on as sent and Anthropic refuses it."""

from __future__ import annotations

import contextlib
import copy

import anthropic
import pytest

from fakes import FakeAnthropic, FakeOpenAI, FakeResponses, Reply
from mlxgw.wires.anthropic.openai_state import MARKER, sealed
from mlxgw.wires.thinking_signature import PREFIX
from tests.failover.rig import gateway_for
from tests.gateway.claude_code import claude_code_request
from tests.thinking.helpers import blocks, send
from tests.thinking.models import ANSWER, THOUGHT

CLOUD = "claude-sonnet-4-6"
REASONING = "The user wants files listed, so I will look."


@contextlib.asynccontextmanager
async def rig(thinker):
    async with (
        FakeAnthropic(verify_thinking=True) as cloud,
        FakeOpenAI(Reply(text="Listed.", thinking=REASONING)) as oa,
        FakeResponses(Reply(text="Listed.", thinking=REASONING)) as rs,
    ):
        backends = {"an": ("anthropic", cloud.url, {}), "oa": ("openai", oa.url, {}), "rs": ("responses", rs.url, {})}
        mappings = [
            {"pattern": "local-thinker", "backend": "local", "model": str(thinker)},
            {"pattern": "gpt-reasoner", "backend": "oa", "model": "o4-mini"},
            {"pattern": "gpt-responses", "backend": "rs", "model": "gpt-5"},
            {"pattern": "claude-*", "backend": "an"},
        ]
        async with gateway_for(backends, mappings) as url:
            yield url, cloud


def first_turn(model: str) -> dict:
    body = claude_code_request(model)
    body["max_tokens"] = 64  # the scripted model ends its turn well before; a bound all the same
    return body


def continued(body: dict, assistant: list[dict], user: list[dict] | str) -> dict:
    body = copy.deepcopy(body)
    body["model"] = CLOUD
    body["messages"] += [{"role": "assistant", "content": assistant}, {"role": "user", "content": user}]
    return body


def thinking_sent(cloud: FakeAnthropic) -> list[dict]:
    return [
        b
        for m in cloud.requests[-1].json["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "thinking"
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_local_thinking_is_left_out_when_the_conversation_moves_to_anthropic(thinker, stream):
    async with rig(thinker) as (url, cloud):
        body = first_turn("local-thinker")
        answer = await send(url, body, stream=stream)
        content = blocks(answer)
        assert [b["type"] for b in content] == ["thinking", "text"]
        assert content[0]["thinking"].strip() == THOUGHT.strip() and content[0]["signature"].startswith(PREFIX)
        assert content[1]["text"].strip() == ANSWER.strip()

        moved = await send(url, continued(body, content, "Now list them again."), stream=stream)

        assert moved.stop_reason == "end_turn"
        assert thinking_sent(cloud) == []
        sent = cloud.requests[-1].json
        assert sent["thinking"] == {"type": "adaptive"}  # no tool loop to keep whole: thinking stays on
        assert sent["messages"][-2] == {"role": "assistant", "content": [content[1]]}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_inside_a_tool_loop_the_turn_goes_on_without_thinking(thinker, stream):
    """Anthropic wants a tool-calling last assistant turn to open with thinking while thinking is on:
    with mlxgw's block left out, that request goes without thinking and its thinking context edit."""
    async with rig(thinker) as (url, cloud):
        body = first_turn("local-thinker")
        thought = blocks(await send(url, body, stream=stream))[0]
        call = {"type": "tool_use", "id": "toolu_01", "name": "LS", "input": {"arg": "."}}
        result = [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.py b.py"}]

        moved = await send(url, continued(body, [thought, call], result), stream=stream)

        assert moved.stop_reason == "end_turn"
        sent = cloud.requests[-1].json
        assert thinking_sent(cloud) == [] and "thinking" not in sent and "context_management" not in sent
        assert sent["messages"][-2]["content"] == [call]


@pytest.mark.parametrize(
    ("model", "marker"),
    [("gpt-reasoner", PREFIX), ("gpt-responses", MARKER)],
    ids=["openai-compatible, mlxgw-signed", "responses, openai-state-sealed"],
)
async def test_another_providers_reasoning_is_left_out_too(thinker, model, marker):
    async with rig(thinker) as (url, cloud):
        body = first_turn(model)
        content = blocks(await send(url, body, stream=True))
        assert content[0]["type"] == "thinking" and content[0]["thinking"] == REASONING
        assert content[0]["signature"].startswith(marker)

        moved = await send(url, continued(body, content, "Thanks."), stream=False)

        assert moved.content[0].text == FakeAnthropic.default_text
        assert thinking_sent(cloud) == []


async def test_anthropic_thinking_goes_back_to_anthropic_as_minted(thinker):
    async with rig(thinker) as (url, cloud):
        cloud.push(Reply(text="Sure.", thinking="Anthropic's own thought."), Reply(text="Again."))
        body = first_turn(CLOUD)
        content = blocks(await send(url, body, stream=True))
        assert content[0]["signature"] in cloud.minted

        await send(url, continued(body, content, "Once more."), stream=False)

        assert thinking_sent(cloud) == [content[0]]


async def test_a_forged_mlxgw_signature_is_passed_on_and_refused(thinker):
    async with rig(thinker) as (url, cloud):
        body = first_turn("local-thinker")
        thought = blocks(await send(url, body, stream=False))[0]
        forged = {**thought, "thinking": thought["thinking"] + " and something else"}

        with pytest.raises(anthropic.BadRequestError) as refused:
            await send(url, continued(body, [forged, {"type": "text", "text": ANSWER}], "Go on."), stream=False)

        assert "Invalid `signature` in `thinking` block" in str(refused.value)
        assert thinking_sent(cloud) == [forged]


async def test_provider_state_goes_back_only_to_the_provider_that_minted_it():
    """One conversation holding Anthropic's signed thinking and OpenAI's reasoning state (sealed in a
    signature, as mlxgw gives it to an Anthropic client), sent on to each kind of upstream."""
    anthropic_sig, openai_state = "EqAnthropicMinted==", "gAAAAOpenAIEncrypted"
    history = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "mine", "signature": anthropic_sig},
            {"type": "text", "text": "a1"},
        ]},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "theirs", "signature": sealed(openai_state, "rs_1")},
            {"type": "text", "text": "a2"},
        ]},
        {"role": "user", "content": "q3"},
    ]  # fmt: skip
    async with FakeResponses() as rs, FakeOpenAI() as oa, FakeAnthropic() as an:
        backends = {"rs": ("responses", rs.url, {}), "oa": ("openai", oa.url, {}), "an": ("anthropic", an.url, {})}
        mappings = [{"pattern": p, "backend": p, "model": "m"} for p in backends]
        async with gateway_for(backends, mappings) as url:
            for model in backends:
                await send(url, {"model": model, "max_tokens": 32, "messages": history}, stream=False)

    def got(up) -> bytes:
        return up.requests[-1].body

    assert anthropic_sig.encode() in got(an) and openai_state.encode() not in got(an)
    assert openai_state.encode() in got(rs) and anthropic_sig.encode() not in got(rs)
    assert anthropic_sig.encode() not in got(oa) and openai_state.encode() not in got(oa)


async def test_a_session_that_fails_over_from_local_to_anthropic_keeps_going(thinker, tmp_path):
    """The local model answers the first turn; the second finds it gone (its folder holds no model)
    and fails over to Anthropic, which gets the conversation without mlxgw's thinking."""
    gone = tmp_path / "gone"
    gone.mkdir()
    async with FakeAnthropic(verify_thinking=True) as cloud:
        backends = {"an": ("anthropic", cloud.url, {})}
        mappings = [
            {"pattern": "local-thinker", "backend": "local", "model": str(thinker)},
            {"pattern": "claude-*", "backend": "local", "model": str(gone), "fallbacks": [f"an:{CLOUD}"]},
        ]
        async with gateway_for(backends, mappings) as url:
            body = first_turn("local-thinker")
            content = blocks(await send(url, body, stream=True))
            moved = await send(url, continued(body, content, "Go on."), stream=True)

    assert moved.content[0].text == FakeAnthropic.default_text
    assert len(cloud.requests) == 1 and thinking_sent(cloud) == []
