"""OpenAI Responses, the client's face: a request to `POST /v1/responses` into the canonical model,
and canonical answers and errors back into Responses JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlxgw.canonical import ChatRequest, ChatResponse
from mlxgw.errors import GatewayError


def parse_request(body: Any, headers: Mapping[str, str]) -> ChatRequest:
    raise NotImplementedError


def render_response(resp: ChatResponse, model: str, request_id: str) -> dict:
    raise NotImplementedError


def render_error(err: GatewayError, request_id: str) -> tuple[int, dict]:
    raise NotImplementedError
