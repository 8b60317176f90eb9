"""Real generation with the demo model in the worker: usage, determinism, seeds, stops, limits."""

from __future__ import annotations

import pytest

from mlxgw.backends.local.messages import to_hf_messages, to_hf_tools
from mlxgw.canonical import Finish, Message, Start, TextDelta, TextPart, Usage
from mlxgw.errors import UpstreamError
from mlxgw.worker.demo import CONTEXT_LENGTH
from tests.worker.helpers import answer, chat, run, short_context_copy, text_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_generates_with_exact_usage(backend, demo_tokenizer):
    request = chat("Tell me about the local gateway.", max_tokens=16)
    events = await run(backend, request)

    prompt = demo_tokenizer.apply_chat_template(to_hf_messages(request), add_generation_prompt=True)
    start = events[0]
    assert isinstance(start, Start) and start.model == "demo"
    assert start.input_tokens + (start.cache_read_tokens or 0) == len(prompt)
    usage, finish = events[-2:]
    assert isinstance(usage, Usage) and isinstance(finish, Finish)
    assert finish.reason in ("max_tokens", "end_turn")
    if finish.reason == "max_tokens":
        assert usage.output_tokens == 16
    assert 0 < usage.output_tokens <= 16
    assert any(isinstance(e, TextDelta) for e in events)
    assert await backend.count_tokens(request, "demo") == len(prompt)


async def test_count_tokens_includes_tools(backend, demo_tokenizer):
    from mlxgw.canonical import Tool

    request = chat("Weather?", tools=[Tool("get_weather", "Weather now", {"type": "object"})])
    prompt = demo_tokenizer.apply_chat_template(
        to_hf_messages(request), tools=to_hf_tools(request), add_generation_prompt=True
    )
    assert await backend.count_tokens(request, "demo") == len(prompt)
    assert len(prompt) > await backend.count_tokens(chat("Weather?"), "demo")


async def test_temperature_zero_is_deterministic_and_reuses_the_prompt_cache(backend):
    request = chat("Is greedy decoding deterministic?", max_tokens=32)
    first = await answer(backend, request)
    second = await answer(backend, request)
    assert first.content == second.content
    assert second.usage.cache_read_tokens > 0


async def test_seed_makes_sampling_reproducible(backend):
    def sampled(seed):
        return chat("Roll the dice for me.", max_tokens=32, temperature=1.0, seed=seed)

    one = await answer(backend, sampled(7))
    again = await answer(backend, sampled(7))
    other = await answer(backend, sampled(8))
    assert one.content == again.content
    assert one.content != other.content


async def test_stop_string_across_a_token_boundary(backend, demo_dir):
    import mlx_lm

    request = chat("Where does the stop string fall?", max_tokens=40)
    events = await run(backend, request)
    text = text_of(events)

    # The same greedy run in process gives the token boundaries.
    model, tokenizer = mlx_lm.load(str(demo_dir))
    prompt = tokenizer.apply_chat_template(to_hf_messages(request), add_generation_prompt=True)
    pieces = [r.text for r in mlx_lm.stream_generate(model, tokenizer, prompt, max_tokens=40)]
    assert "".join(pieces).startswith(text)

    # A stop made of the end of one token and the start of the next, first seen at that boundary.
    boundary = 0
    for left, right in zip(pieces, pieces[1:], strict=False):
        boundary += len(left)
        if len(left) < 2 or len(right) < 2:
            continue
        stop = left[-2:] + right[:2]
        if text.find(stop) == boundary - 2 and boundary + 2 <= len(text):
            break
    else:
        pytest.fail(f"no stop string spans two tokens in {pieces!r}")

    events = await run(backend, chat("Where does the stop string fall?", max_tokens=40, stop=["zzzz", stop]))
    assert text_of(events) == text[: boundary - 2]
    assert events[-1] == Finish("stop_sequence", stop)
    assert events[-2].output_tokens < 40


async def test_max_tokens_beyond_the_context_is_clamped(own_backend, demo_dir, demo_tokenizer, tmp_path):
    # A prompt that leaves room for a few tokens only, then a max_tokens of 128000. The demo model
    # with a short context, to keep the prompt quick.
    context = 2048
    local = own_backend({"demo": str(short_context_copy(demo_dir, tmp_path / "short", context))})
    words = " ".join(["gateway"] * (context - 40))
    request = chat(words, max_tokens=128000)
    prompt_tokens = len(
        demo_tokenizer.apply_chat_template(to_hf_messages(request), add_generation_prompt=True)
    )
    assert context - 60 < prompt_tokens < context
    events = await run(local, request)
    assert events[0].input_tokens + (events[0].cache_read_tokens or 0) == prompt_tokens
    assert events[-1].reason == "max_tokens"
    assert events[-2].output_tokens == context - prompt_tokens


async def test_a_prompt_beyond_the_context_is_refused(backend):
    with pytest.raises(UpstreamError) as caught:
        await run(backend, chat(" ".join(["gateway"] * CONTEXT_LENGTH)))
    error = caught.value
    assert (error.kind, error.code, error.status, error.retryable) == (
        "invalid_request",
        "context_length_exceeded",
        400,
        False,
    )


async def test_a_follow_up_turn_reads_the_cached_prefix(backend):
    first = chat("Remember the word cache.", max_tokens=12)
    reply = await answer(backend, first)
    follow = chat("Remember the word cache.", max_tokens=12)
    follow.messages += [Message("assistant", reply.content), Message("user", [TextPart("Which word?")])]
    events = await run(backend, follow)
    start = events[0]
    assert start.cache_read_tokens >= reply.usage.input_tokens - 1
    assert start.input_tokens > 0  # the new turn itself is not in the cache
