"""The frames between the daemon and the worker: one JSON object per line.

Daemon → worker, each with an integer `id` chosen by the daemon (unique per worker):

    {"op": "generate", "id", ...the fields of `Job`}
    {"op": "cancel", "id"}                      the request's sequence leaves the batch at once
    {"op": "count", "id", "name", "path", "messages", "tools"}
    {"op": "load" | "unload", "id", "name", "path"}
    {"op": "status", "id"}
    {"op": "shutdown"}

Worker → daemon:

    {"id", "ev": [event, ...]}      events of a generation, in order; the stream ends with "finish"
    {"id", "progress": [done, total]}   prompt tokens processed so far, while a long prompt fills
    {"id", "result": {...}}         the answer to count, load, unload, status
    {"id", "error": {"kind", "message", "code", "status", "retryable"}}   ends the request

An event is a list: its tag, then the fields of the canonical event in declaration order, e.g.
`["text", "Hello"]`, `["start", null, null, 12, 0, null]`, `["finish", "end_turn", null]`.
Frames are written with ASCII-only JSON, so a line never holds a raw newline. The worker sends
text every few milliseconds rather than every token, writes what is ready in one go, and merges
consecutive text of one request into one event.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mlxgw.canonical import (
    Event,
    Finish,
    Start,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UnparsedToolCall,
    Usage,
)


@dataclass
class Job:
    """A generation request: what the daemon sends in a "generate" frame, and the worker reads."""

    id: int
    name: str
    path: str
    messages: list[dict]
    tools: list[dict] = field(default_factory=list)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    thinking_budget: int | None = None  # the most tokens a `<think>` model may think before `</think>` is forced
    # What the answer is held to (see worker.constraints): {"type": "json_object"},
    # {"type": "json_schema", "schema": {...}}, {"type": "tool_call", "names": [...]} (one call of
    # one of these `tools`) or {"type": "tools", "strict": [...]} (free text; calls of these tools
    # hold to their schemas).
    constraint: dict | None = None

    def to_frame(self) -> dict[str, Any]:
        return {"op": "generate", **asdict(self)}

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> Job:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in frame.items() if k in names and v is not None})


def assistant_message(text: str, reasoning: str, calls: list[tuple[str, str, str]]) -> dict[str, Any]:
    """An assistant turn as a Job's `messages` give it to the chat template; `calls` are (id, name,
    arguments JSON). The daemon builds prompts with it and the worker the next turn it computes
    ahead: they must build it alike, or the next turn's prompt misses the tokens computed for it."""
    out: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        # The key Qwen3-style templates read; the others ignore it.
        out["reasoning_content"] = reasoning
    if calls:
        out["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": _arguments(arguments)}}
            for call_id, name, arguments in calls
        ]
    return out


def _arguments(text: str) -> Any:
    """Templates render arguments with `tojson`, so they need the object, not its JSON text."""
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text


TAGS: dict[str, type] = {
    "start": Start,
    "text": TextDelta,
    "think": ThinkingDelta,
    "tool_start": ToolCallStart,
    "tool_delta": ToolCallDelta,
    "tool_end": ToolCallEnd,
    "tool_unparsed": UnparsedToolCall,
    "usage": Usage,
    "finish": Finish,
}
_TAG_OF = {cls: tag for tag, cls in TAGS.items()}
_MERGEABLE = ("text", "think")

# Frames can be as large as a whole conversation.
MAX_FRAME_BYTES = 256 * 1024 * 1024
# How long a worker asked to shut down has before the daemon kills it (it finishes writing its
# disk cache in that time).
SHUTDOWN_S = 5.0


def encode(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, separators=(",", ":")).encode("ascii") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    return json.loads(line)


def event_to_wire(event: Event) -> list:
    return [_TAG_OF[type(event)], *(getattr(event, f.name) for f in fields(event))]


def event_from_wire(item: list) -> Event:
    return TAGS[item[0]](*item[1:])


def merge_frames(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fold the event frames of one request into one frame and adjacent text into one event.

    Only frames with no other frame of the same request between them are folded, so each request
    keeps its own order; the order between requests does not matter.
    """
    out: list[dict[str, Any]] = []
    open_events: dict[int, list] = {}
    for frame in frames:
        rid = frame.get("id")
        events = frame.get("ev")
        if events is None:
            open_events.pop(rid, None)
            out.append(frame)
            continue
        target = open_events.get(rid)
        if target is None:
            target = open_events[rid] = []
            out.append({"id": rid, "ev": target})
        for item in events:
            if target and item[0] in _MERGEABLE and target[-1][0] == item[0]:
                target[-1] = [item[0], target[-1][1] + item[1]]
            else:
                target.append(item)
    return out
