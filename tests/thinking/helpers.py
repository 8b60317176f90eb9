"""What the thinking tests share: the anthropic SDK sending Claude Code's requests, whole or streamed."""

from __future__ import annotations

import anthropic

# Fields the anthropic SDK takes as arguments; the rest of a Claude Code body goes as extra_body.
SDK_FIELDS = ("model", "max_tokens", "messages", "system", "tools", "metadata", "thinking")


def client(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)


async def send(url: str, body: dict, *, stream: bool) -> anthropic.types.Message:
    kwargs = {k: v for k, v in body.items() if k in SDK_FIELDS}
    extra = {k: v for k, v in body.items() if k not in SDK_FIELDS and k != "stream"}
    async with client(url) as c:
        if not stream:
            return await c.messages.create(**kwargs, extra_body=extra)
        async with c.messages.stream(**kwargs, extra_body=extra) as events:
            return await events.get_final_message()


def blocks(message: anthropic.types.Message) -> list[dict]:
    """The answer's content as a client sends it back in the next turn."""
    return [b.model_dump(exclude_none=True) for b in message.content]
