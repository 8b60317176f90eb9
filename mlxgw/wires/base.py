"""What a wire protocol provides: a client-facing face (the gateway answers in it) and an
upstream-facing face (the gateway sends to a backend in it). Both are pure: JSON and SSE bytes in,
canonical requests and events out, and back; no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from mlxgw.canonical import ChatRequest, ChatResponse, Event
from mlxgw.errors import GatewayError, UpstreamError


class StreamRenderer(Protocol):
    """Canonical events → one client's SSE bytes, in its protocol's order."""

    def render(self, event: Event) -> bytes: ...

    def ping(self) -> bytes:
        """A keep-alive while nothing else flows."""
        ...

    def error(self, err: GatewayError) -> bytes:
        """The protocol's error event; the stream ends after it."""
        ...

    def close(self) -> bytes:
        """Whatever ends a complete stream."""
        ...


class StreamParser(Protocol):
    """One upstream's SSE frames → canonical events."""

    finished: bool  # the stream said it was complete (a missing end is a failure)
    done: bool  # its last frame came: nothing more will (an upstream slow to close is not waited for)

    def feed(self, event: str | None, data: str) -> list[Event]: ...

    def end(self) -> list[Event]:
        """Events held back for a frame that never came, at the end of the stream."""
        ...


class ClientWire(Protocol):
    """A protocol clients speak to the gateway."""

    name: str  # as the request log records it
    chat_paths: tuple[str, ...]  # the POST paths answered with a chat

    def claims(self, path: str, headers: Mapping[str, str]) -> bool:
        """Whether a request to `path` speaks this protocol (for paths several wires share)."""
        ...

    def parse_request(self, body: Any, headers: Mapping[str, str]) -> ChatRequest: ...

    def render_response(self, response: ChatResponse, model: str, request_id: str) -> dict: ...

    def stream_renderer(self, model: str, request_id: str, *, include_usage: bool) -> StreamRenderer: ...

    def render_error(self, err: GatewayError, request_id: str) -> tuple[int, dict]: ...


class UpstreamWire(Protocol):
    """A protocol the gateway speaks to backends."""

    name: str

    def build_request(self, request: ChatRequest, model: str, **options: Any) -> dict:
        """A canonical request as this protocol's body (translation)."""
        ...

    def passthrough_body(self, raw: dict, model: str, **options: Any) -> dict:
        """A client's own body of this protocol, with only what must change changed."""
        ...

    def events_from_response(self, body: dict) -> list[Event]: ...

    def stream_parser(self) -> StreamParser: ...

    def error_from_upstream(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError: ...


class Wire(ClientWire, UpstreamWire, Protocol):
    """Both faces: every wire mlxgw knows speaks both ways."""
