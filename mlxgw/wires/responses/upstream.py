"""OpenAI Responses, the upstream's face: a canonical request as the body a Responses server takes,
and its answers and errors back into canonical events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlxgw.canonical import ChatRequest, Event
from mlxgw.errors import UpstreamError


def build_request(req: ChatRequest, model: str, **options: Any) -> dict:
    raise NotImplementedError


def passthrough_body(raw: dict, model: str, **options: Any) -> dict:
    raise NotImplementedError


def events_from_response(body: dict) -> list[Event]:
    raise NotImplementedError


def error_from_upstream(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    raise NotImplementedError
