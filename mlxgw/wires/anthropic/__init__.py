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
    "chat_paths",
    "claims",
    "name",
    "stream_parser",
    "stream_renderer",
    "FORWARDED_HEADERS",
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


# The Wire protocol (mlxgw.wires.base), implemented by this module.
name = "anthropic"
chat_paths = ("/v1/messages",)
stream_renderer = StreamRenderer
stream_parser = StreamParser


def claims(path: str, headers: Mapping[str, str]) -> bool:
    # /v1/models is shared: Anthropic's SDK marks its requests with anthropic-version.
    return path.startswith("/v1/messages") or (path.startswith("/v1/models") and "anthropic-version" in headers)
