"""Bounding the silences of a backend's answer: before its first meaningful item, between items,
and all of it within the request deadline; and holding back a local answer until it is checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from mlxgw.backends.base import ANSWER_TIMEOUT, Item, is_meaningful
from mlxgw.canonical import Progress, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart, UnparsedToolCall
from mlxgw.dispatch.breaker import Breaker, Permit
from mlxgw.dispatch.output_check import OutputCheck, unparsed
from mlxgw.errors import BadOutput, UpstreamError
from mlxgw.settings import Policy


async def paced(
    source: AsyncIterator[Item], name: str, policy: Policy, deadline: float, *, whole: bool
) -> AsyncIterator[Item]:
    """Bound the silence before each item, all within the request deadline.

    Until the first meaningful item, a stream may be silent for first_byte_timeout_s at a time: any
    item, `Progress` included, proves the backend alive and restarts that wait, so a long prefill that
    reports progress is never cut off. After it, idle_timeout_s. A whole (non-streamed) answer comes
    in one piece only once it is fully generated, so answer_timeout_s bounds the wait for its first
    item, and idle_timeout_s the waits after; such an answer that times out is not retried on the
    same backend (`ANSWER_TIMEOUT`). `Progress` items stop here: they have nothing to send.
    """
    loop = asyncio.get_running_loop()
    stream = source.__aiter__()
    answer_by = loop.time() + policy.answer_timeout_s
    started = heard = False
    try:
        while True:
            if started or (whole and heard):
                limit = loop.time() + policy.idle_timeout_s
            else:
                limit = answer_by if whole else loop.time() + policy.first_byte_timeout_s
            limit = min(deadline, limit)
            try:
                async with asyncio.timeout_at(limit):
                    item = await stream.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                if limit == deadline:
                    what = "the request deadline passed"
                elif whole and not heard:
                    what = f"no answer within {policy.answer_timeout_s:g} s"
                elif started or whole:
                    what = f"it went silent for {policy.idle_timeout_s:g} s"
                else:
                    what = f"it sent nothing for {policy.first_byte_timeout_s:g} s before answering"
                raise UpstreamError(
                    "timeout", f"backend {name} timed out: {what}", backend=name, retryable=True,
                    code=ANSWER_TIMEOUT if whole else None,
                ) from None
            heard = True
            if isinstance(item, Progress):
                continue
            started = started or is_meaningful(item)
            yield item
    finally:
        await stream.aclose()


async def watched(stream: AsyncIterator[Item], breaker: Breaker) -> AsyncIterator[Item]:
    """The rest of a committed stream; a backend that breaks mid-answer counts against its breaker."""
    try:
        async for item in stream:
            yield item
    except UpstreamError as exc:
        if exc.retryable:
            breaker.failed(Permit())
        raise
    finally:
        await stream.aclose()


async def nothing(stream: AsyncIterator[Item]) -> AsyncIterator[Item]:
    await stream.aclose()
    return
    yield


# ---- holding back what must be checked (bad_output) --------------------------------------------


async def held(source: AsyncIterator[Item], check: OutputCheck, name: str) -> AsyncIterator[Item]:
    """A local answer checked as it comes, held back until what must be checked is known good.

    With tools offered, everything waits until the first tool call is complete and valid (then it
    and the text before it go out together, and later calls are checked as they complete) or the
    answer ends as plain text. With a JSON format required, the whole answer waits for its end (JSON
    can only be judged whole) unless it turns out to be a tool call. A bad part raises `BadOutput`:
    before anything went out the dispatcher can still move on; after, it is the client's error event.
    """
    waiting: list[Item] = []
    released = False  # the first tool call passed: from then on, only each later call waits for its end
    calls: dict[int, tuple[ToolCallStart, list[str]]] = {}
    open_calls: set[int] = set()
    text: list[str] = []
    try:
        async for item in source:
            if isinstance(item, UnparsedToolCall):
                raise BadOutput(name, unparsed(item.text))
            if isinstance(item, ToolCallStart):
                calls[item.index] = (item, [])
                open_calls.add(item.index)
            elif isinstance(item, ToolCallDelta) and item.index in calls:
                calls[item.index][1].append(item.arguments)
            elif isinstance(item, ToolCallEnd) and item.index in calls:
                start, arguments = calls[item.index]
                if problem := check.tool_call(start, "".join(arguments)):
                    raise BadOutput(name, problem)
                open_calls.discard(item.index)
                released = True
            elif isinstance(item, TextDelta):
                text.append(item.text)
            waiting.append(item)
            if released and not open_calls:
                for ready in waiting:
                    yield ready
                waiting.clear()
        if check.requires_json and not calls and (problem := check.text("".join(text))):
            raise BadOutput(name, problem)
        for ready in waiting:
            yield ready
    finally:
        await source.aclose()


async def as_written(source: AsyncIterator[Item]) -> AsyncIterator[Item]:
    """A local answer that nobody checks: a tool call its parser could not read goes out as the
    text the model wrote, for the client (or the model, told so on the next turn) to make sense of."""
    try:
        async for item in source:
            yield TextDelta(item.text) if isinstance(item, UnparsedToolCall) else item
    finally:
        await source.aclose()
