"""Fake OpenAI, Anthropic and OpenAI Responses upstreams: real aiohttp servers on 127.0.0.1:0, scriptable to misbehave.

async with FakeOpenAI(Reply(text="hi"), Reply(status=429, retry_after=1)) as up:
    client = openai.AsyncOpenAI(base_url=up.url, api_key="sk-test", max_retries=0)
    ...
    assert up.requests[0].json["model"] == "gpt-4o"
"""

from .anthropic_fake import FakeAnthropic
from .openai_fake import FakeOpenAI
from .responses_fake import FakeResponses
from .script import (
    FakeUpstream,
    RecordedRequest,
    Reply,
    Thinking,
    ToolCall,
    Usage,
    fake_token_count,
    refused_url,
)
from .vllm_fake import FakeVLLM


def fake_upstream(protocol: str, *replies: Reply, **kwargs) -> FakeUpstream:
    """FakeOpenAI, FakeAnthropic or FakeResponses by protocol name ("openai" | "anthropic" | "responses")."""
    cls = {"openai": FakeOpenAI, "anthropic": FakeAnthropic, "responses": FakeResponses}[protocol]
    return cls(*replies, **kwargs)


__all__ = [
    "FakeAnthropic",
    "FakeOpenAI",
    "FakeResponses",
    "FakeUpstream",
    "FakeVLLM",
    "RecordedRequest",
    "Reply",
    "Thinking",
    "ToolCall",
    "Usage",
    "fake_token_count",
    "fake_upstream",
    "refused_url",
]
