"""Retrying one attempt: how long to wait between tries (the upstream's Retry-After, else full-jitter
exponential backoff) and which errors are not worth another try of the same backend."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import TypeVar

import backoff

from mlxgw.backends.base import ANSWER_TIMEOUT
from mlxgw.errors import UpstreamError

RETRY_AFTER_CAP_S = 10.0  # a backend asking us to wait longer than this is skipped instead


BACKOFF_FACTOR_S = 0.25


BACKOFF_CAP_S = 4.0


def _waits():
    """Backoff waits: the upstream's Retry-After when it gave one, else full-jitter exponential."""
    error: UpstreamError = yield
    n = 0
    while True:
        if error.retry_after is not None:
            wait = error.retry_after
        else:
            wait = backoff.full_jitter(min(BACKOFF_CAP_S, BACKOFF_FACTOR_S * 2**n))
        n += 1
        error = yield wait


# Errors another try of the same backend cannot mend (or, for a whole answer that timed out, would
# pay for it twice): move on to the next attempt at once.
NOT_RETRIED = ("circuit_open", "model_not_found", "model_unavailable", ANSWER_TIMEOUT)


def give_up(error: UpstreamError) -> bool:
    return (
        not error.retryable
        or error.code in NOT_RETRIED
        or (error.retry_after is not None and error.retry_after > RETRY_AFTER_CAP_S)
    )


# The retry limits of the attempt in progress (max tries, deadline in loop time): read by the one
# retrying wrapper below, so it is built once rather than once per attempt.
T = TypeVar("T")

retry_limits: contextvars.ContextVar[tuple[int, float]] = contextvars.ContextVar("retry_limits")


def _remaining() -> float:
    return max(0.0, retry_limits.get()[1] - asyncio.get_running_loop().time())


@backoff.on_exception(
    _waits,
    UpstreamError,
    max_tries=lambda: retry_limits.get()[0],
    max_time=_remaining,
    giveup=give_up,
    jitter=None,
    logger=None,  # we log attempts ourselves, once, at the right level
)
async def with_retries(one_try: Callable[[], Awaitable[T]]) -> T:
    return await one_try()
