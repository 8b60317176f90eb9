"""OpenAI Responses (`POST /v1/responses`) ↔ the canonical model."""

from __future__ import annotations

from collections.abc import Mapping

from mlxgw.wires.responses.client import parse_request, render_error, render_response
from mlxgw.wires.responses.stream_parser import StreamParser
from mlxgw.wires.responses.stream_renderer import StreamRenderer
from mlxgw.wires.responses.upstream import (
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
name = "responses"
chat_paths = ("/v1/responses",)
stream_renderer = StreamRenderer
stream_parser = StreamParser


def claims(path: str, headers: Mapping[str, str]) -> bool:
    return path == "/v1/responses" or path.startswith("/v1/responses/")
