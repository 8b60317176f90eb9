"""Anthropic Messages (`POST /v1/messages`) ↔ the canonical model."""

from __future__ import annotations

from collections.abc import Mapping

from mlxgw.wires.anthropic.client import (
    FORWARDED_HEADERS,
    parse_count_tokens_request,
    parse_request,
    render_error,
    render_response,
)
from mlxgw.wires.anthropic.stream_parser import StreamParser
from mlxgw.wires.anthropic.stream_renderer import StreamRenderer
from mlxgw.wires.anthropic.upstream import (
    build_request,
    error_from_upstream,
    events_from_response,
    passthrough_body,
)

__all__ = [
    "FORWARDED_HEADERS",
    "WIRE",
    "StreamParser",
    "StreamRenderer",
    "build_request",
    "error_from_upstream",
    "events_from_response",
    "parse_count_tokens_request",
    "parse_request",
    "passthrough_body",
    "render_error",
    "render_response",
]


class AnthropicWire:
    name = "anthropic"
    chat_paths = ("/v1/messages",)

    def claims(self, path: str, headers: Mapping[str, str]) -> bool:
        # /v1/models is shared: Anthropic's SDK marks its requests with anthropic-version.
        return path.startswith("/v1/messages") or (path.startswith("/v1/models") and "anthropic-version" in headers)

    parse_request = staticmethod(parse_request)
    render_response = staticmethod(render_response)
    stream_renderer = StreamRenderer
    render_error = staticmethod(render_error)
    build_request = staticmethod(build_request)
    passthrough_body = staticmethod(passthrough_body)
    events_from_response = staticmethod(events_from_response)
    stream_parser = StreamParser
    error_from_upstream = staticmethod(error_from_upstream)


WIRE = AnthropicWire()
