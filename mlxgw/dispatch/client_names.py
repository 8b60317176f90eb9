"""Every translated answer in the client's tool names: a target that was sent flattened namespace
or freeform tools (mlxgw.wires.tool_names) calls them by their flattened names, and the dispatcher
maps those back here before any renderer sees them. Passthrough frames are the client's own
protocol and pass untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator

from mlxgw.backends.base import Item, RawFrame
from mlxgw.canonical import ChatRequest
from mlxgw.wires.tool_names import Restorer


def in_client_names(items: AsyncIterator[Item], request: ChatRequest) -> AsyncIterator[Item]:
    restorer = Restorer(request.tools)
    if not restorer.names.flat:
        return items  # nothing was renamed: every request from a Chat Completions or Anthropic client
    return _restored(items, restorer)


async def _restored(items: AsyncIterator[Item], restorer: Restorer) -> AsyncIterator[Item]:
    try:
        async for item in items:
            if isinstance(item, RawFrame):
                yield item
                continue
            for event in restorer.feed(item):
                yield event
    finally:
        await items.aclose()
