"""What every backend offers the dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from mlxgw.canonical import ChatRequest, Event


class Backend(Protocol):
    """A place a request can be sent to.

    `stream` yields canonical events for one request. It raises `UpstreamError` for failures:
    with `retryable=True` when another try or another backend may succeed (connection trouble,
    timeouts, 429/5xx, a crashed or missing local model), `retryable=False` when the request itself
    is at fault. Cancelling the iterator (the client went away) must cancel the upstream work.
    """

    name: str
    kind: str  # "local" | "openai" | "anthropic"

    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Event]: ...

    async def count_tokens(self, request: ChatRequest, model: str) -> int: ...

    async def close(self) -> None: ...
