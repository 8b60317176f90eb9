"""OpenAI Chat Completions (`POST /v1/chat/completions`) ↔ the canonical model."""

from __future__ import annotations

from collections.abc import Mapping

from mlxgw.wires.openai.client import parse_request, render_error, render_response
from mlxgw.wires.openai.stream import StreamParser, StreamRenderer
from mlxgw.wires.openai.upstream import (
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
    "StreamParser",
    "StreamRenderer",
    "build_request",
    "error_from_upstream",
    "events_from_response",
    "parse_request",
    "passthrough_body",
    "render_error",
    "render_response",
]


# The Wire protocol (mlxgw.wires.base), implemented by this module.
name = "openai"
chat_paths = ("/v1/chat/completions",)
stream_renderer = StreamRenderer
stream_parser = StreamParser


def claims(path: str, headers: Mapping[str, str]) -> bool:
    return path in chat_paths
