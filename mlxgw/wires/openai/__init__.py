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
    "WIRE",
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


class OpenAIWire:
    name = "openai"
    chat_paths = ("/v1/chat/completions",)

    def claims(self, path: str, headers: Mapping[str, str]) -> bool:
        return path in self.chat_paths

    parse_request = staticmethod(parse_request)
    render_response = staticmethod(render_response)
    stream_renderer = StreamRenderer
    render_error = staticmethod(render_error)
    build_request = staticmethod(build_request)
    passthrough_body = staticmethod(passthrough_body)
    events_from_response = staticmethod(events_from_response)
    stream_parser = StreamParser
    error_from_upstream = staticmethod(error_from_upstream)


WIRE = OpenAIWire()
