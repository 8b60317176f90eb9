"""Requests and bounded waits for the worker tests."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from mlxgw.canonical import ChatRequest, Event, Message, TextDelta, TextPart, collect

# No await in these tests waits longer than this.
WAIT_S = 30.0


def chat(text: str = "Hello there, what is the weather today?", **fields) -> ChatRequest:
    fields.setdefault("max_tokens", 24)
    fields.setdefault("temperature", 0.0)
    return ChatRequest(model="demo", messages=[Message("user", [TextPart(text)])], **fields)


async def run(backend, request: ChatRequest, model: str = "demo") -> list[Event]:
    async def drain() -> list[Event]:
        return [event async for event in backend.stream(request, model)]

    return await asyncio.wait_for(drain(), WAIT_S)


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def answer(backend, request: ChatRequest, model: str = "demo"):
    return collect(await run(backend, request, model))


async def until(predicate, *, timeout: float = 5.0, interval: float = 0.02):
    """Poll an async predicate until it returns something truthy; return that."""

    async def poll():
        while not (value := await predicate()):
            await asyncio.sleep(interval)
        return value

    return await asyncio.wait_for(poll(), timeout)


def short_context_copy(demo_dir: Path, dest: Path, context: int) -> Path:
    """The demo model with a smaller context: a prompt that fills it is quick to make and to prefill."""
    shutil.copytree(demo_dir, dest)
    config = json.loads((dest / "config.json").read_text())
    (dest / "config.json").write_text(json.dumps({**config, "max_position_embeddings": context}))
    return dest
