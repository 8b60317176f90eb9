"""The official SDKs as clients: their HTTP layer answers with bytes our renderers produced."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx2
import openai
import pytest


def _http(body: bytes, status: int, content_type: str) -> httpx2.Client:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=body, headers={"content-type": content_type})

    return httpx2.Client(transport=httpx2.MockTransport(answer))


@pytest.fixture
def anthropic_sdk() -> Callable[..., anthropic.Anthropic]:
    def make(body: bytes, status: int = 200, content_type: str = "text/event-stream") -> anthropic.Anthropic:
        http = _http(body, status, content_type)
        return anthropic.Anthropic(api_key="test", base_url="http://gateway", http_client=http, max_retries=0)

    return make


@pytest.fixture
def openai_sdk() -> Callable[..., openai.OpenAI]:
    def make(body: bytes, status: int = 200, content_type: str = "text/event-stream") -> openai.OpenAI:
        http = _http(body, status, content_type)
        return openai.OpenAI(api_key="test", base_url="http://gateway/v1", http_client=http, max_retries=0)

    return make
