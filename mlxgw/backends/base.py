"""What every backend offers the dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from mlxgw.canonical import MEANINGFUL, ChatRequest, Event, Progress


@dataclass
class RawFrame:
    """Bytes relayed untouched to a client of the upstream's own protocol (native passthrough),
    with the events the gateway read from them for its log and its failover decisions."""

    data: bytes
    events: list[Event] = field(default_factory=list)
    whole: bool = False  # a complete non-streaming body rather than one SSE frame
    headers: dict[str, str] = field(default_factory=dict)  # upstream headers worth relaying


Item = Event | RawFrame | Progress

# The code of a timeout that cut off a whole (non-streamed) answer while it was being generated or
# sent: trying the same backend again would generate it all over again, so the chain moves on.
ANSWER_TIMEOUT = "answer_timeout"


def is_meaningful(item: Item) -> bool:
    """Has content started? (not a role-only chunk, a message_start or a ping)"""
    if isinstance(item, RawFrame):
        return item.whole or any(isinstance(ev, MEANINGFUL) for ev in item.events)
    return isinstance(item, MEANINGFUL)


class Backend(Protocol):
    """A place a request can be sent to.

    `stream` yields canonical events for one request, or `RawFrame`s when `passthrough` says the
    client speaks this backend's own protocol. It raises `UpstreamError` for failures: with
    `retryable=True` when another try or another backend may succeed (connection trouble,
    timeouts, 429/5xx, a crashed or missing local model), `retryable=False` when the request itself
    is at fault. Closing the iterator early (the client went away) must cancel the upstream work.
    While it works with nothing to show yet (a long prompt, an upstream's pings) it yields `Progress`:
    the dispatcher bounds the silence between items, not the time to the first one.
    """

    name: str
    kind: str  # "local" or a cloud kind (mlxgw.kinds.KINDS)

    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Item]: ...

    async def count_tokens(self, request: ChatRequest, model: str) -> int: ...

    async def close(self) -> None: ...


# ---- what some backends can do besides ---------------------------------------------------------


@runtime_checkable
class ListsModels(Protocol):
    """A backend that can say which models it serves (for `/v1/models` behind wildcard mappings)."""

    async def list_models(self) -> list[str]: ...


class ManagesModels(Protocol):
    """A backend whose models are loaded and unloaded on demand (the local worker): what the admin
    endpoints and `mlxgw models` call."""

    async def load(self, model: str) -> dict[str, Any]: ...

    async def unload(self, model: str) -> str: ...

    async def status(self) -> dict[str, Any]:
        """Its process and models, for `mlxgw status`; starts nothing."""
        ...


class LocalModels(Backend, ManagesModels, Protocol):
    """The local backend: a backend that also manages its models."""
