"""What the liveness tests share: upstreams that think before they answer, and SDK clients."""

from __future__ import annotations

import anthropic
import openai

from fakes.upstream import FakeAnthropic, FakeOpenAI

MSG = [{"role": "user", "content": "think it over"}]
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
KEEPALIVE = b": keep-alive"  # the gateway's own SSE comment


class _Thinking:
    """Sends `keepalives` keep-alive frames before the answer's content (each after the reply's
    chunk delay), as upstreams do while a long prompt fills."""

    keepalive = b""
    before_content = 0  # frames sent ahead of the keep-alives

    def __init__(self, *replies, keepalives: int = 0, **kw) -> None:
        super().__init__(*replies, **kw)
        self.keepalives = keepalives

    async def _send_sse(self, request, reply, frames, error_frame):
        k = self.before_content
        frames = frames[:k] + [self.keepalive] * self.keepalives + frames[k:]
        return await super()._send_sse(request, reply, frames, error_frame)


class ThinkingOpenAI(_Thinking, FakeOpenAI):
    keepalive = b": OPENROUTER PROCESSING\n\n"  # an OpenAI-compatible router's comment line


class ThinkingAnthropic(_Thinking, FakeAnthropic):
    keepalive = b'event: ping\ndata: {"type": "ping"}\n\n'
    before_content = 1  # pings follow message_start


THINKING = {"openai": ThinkingOpenAI, "anthropic": ThinkingAnthropic}


def body_for(client: str, model: str = "m", *, stream: bool = True) -> dict:
    body = {"model": model, "messages": MSG, "stream": stream}
    if client == "anthropic":
        body["max_tokens"] = 100
    return body


async def answer_text(url: str, client: str, *, stream: bool, model: str = "m", read_timeout: float = 10) -> str:
    """The text of one answer, through the official SDK of `client`, which gives up after
    `read_timeout` seconds without a byte."""
    timeout = openai.Timeout(10, read=read_timeout)
    if client == "openai":
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=timeout) as oa:
            if not stream:
                r = await oa.chat.completions.create(model=model, messages=MSG)
                return r.choices[0].message.content
            chunks = await oa.chat.completions.create(model=model, messages=MSG, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0, timeout=timeout) as an:
        if not stream:
            m = await an.messages.create(model=model, max_tokens=100, messages=MSG)
            return m.content[0].text
        async with an.messages.stream(model=model, max_tokens=100, messages=MSG) as s:
            return (await s.get_final_message()).content[0].text
