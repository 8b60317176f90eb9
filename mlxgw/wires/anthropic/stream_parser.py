"""Reading an Anthropic upstream's stream of Messages events into canonical events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlxgw.canonical import (
    Event,
    Finish,
    RedactedThinking,
    Start,
    TextDelta,
    ThinkingDelta,
    ThinkingSignature,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
)
from mlxgw.errors import (
    UnreadableUpstream,
)
from mlxgw.wires.anthropic.usage import usage_from_anthropic
from mlxgw.wires.common import (
    FINISH_FROM_ANTHROPIC,
    dumps,
    log,
    new_id,
)
from mlxgw.wires.error_map import (
    stream_error,
)
from mlxgw.wires.upstream_fields import typed_field


@dataclass
class _Block:
    type: str
    tool: int | None = None  # canonical tool-call index of a tool_use block
    input: Any = None  # the `input` given in content_block_start, used when no deltas follow
    has_arguments: bool = False
    signature: str | None = None  # a signature given in content_block_start, sent if no delta does


class StreamParser:
    """An upstream's Messages SSE events → canonical events. Raises UpstreamError on an error event."""

    def __init__(self) -> None:
        self.finished = False
        self.done = False  # message_stop came: nothing follows, however long the upstream keeps the connection
        self._blocks: dict[Any, _Block] = {}
        self._tools = 0

    def feed(self, event: str | None, data: str) -> list[Event]:
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise UnreadableUpstream(f"upstream sent a malformed stream event: {data[:200]!r}")
        kind = typed_field(payload, "type", str) or event
        if kind == "error" or event == "error":
            raise stream_error(payload.get("error"), data)
        if kind == "message_start":
            message = typed_field(payload, "message", dict) or {}
            usage = usage_from_anthropic(message.get("usage"), "message.usage")
            return [
                Start(
                    typed_field(message, "id", str, "message."),
                    typed_field(message, "model", str, "message."),
                    usage.input_tokens,
                    usage.cache_read_tokens,
                    usage.cache_write_tokens,
                )
            ]
        if kind in ("content_block_start", "content_block_delta", "content_block_stop"):
            index = typed_field(payload, "index", int)
            if kind == "content_block_start":
                return self._start(index, typed_field(payload, "content_block", dict) or {})
            if kind == "content_block_delta":
                return self._delta(self._blocks.get(index), typed_field(payload, "delta", dict) or {})
            return self._stop(self._blocks.pop(index, None))
        if kind == "message_delta":
            delta = typed_field(payload, "delta", dict) or {}
            events: list[Event] = [usage_from_anthropic(payload.get("usage"))]
            if stop_reason := typed_field(delta, "stop_reason", str, "delta."):
                reason = FINISH_FROM_ANTHROPIC.get(stop_reason, "end_turn")
                events.append(Finish(reason, typed_field(delta, "stop_sequence", str, "delta.")))
                self.finished = True
            return events
        if kind == "message_stop":
            self.finished = self.done = True
        return []

    def end(self) -> list[Event]:
        """At end of stream: nothing is held back in this protocol (kept for symmetry with OpenAI's)."""
        return []

    def _start(self, index: int | None, block: dict) -> list[Event]:
        where = "content_block."
        kind = typed_field(block, "type", str, where)
        if kind == "text":
            self._blocks[index] = _Block("text")
            return [TextDelta(text)] if (text := typed_field(block, "text", str, where)) else []
        if kind == "thinking":
            self._blocks[index] = _Block("thinking", signature=typed_field(block, "signature", str, where) or None)
            return [ThinkingDelta(text)] if (text := typed_field(block, "thinking", str, where)) else []
        if kind == "redacted_thinking":
            return [RedactedThinking(typed_field(block, "data", str, where) or "")]
        if kind == "tool_use":
            self._blocks[index] = _Block("tool_use", tool=self._tools, input=typed_field(block, "input", dict, where))
            self._tools += 1
            call_id, name = typed_field(block, "id", str, where), typed_field(block, "name", str, where)
            return [ToolCallStart(self._blocks[index].tool, call_id or new_id("toolu_"), name or "")]
        log.debug("ignoring upstream content block of type %r", kind)
        return []

    def _delta(self, block: _Block | None, delta: dict) -> list[Event]:
        kind = typed_field(delta, "type", str, "delta.")
        if block is None:
            return []
        key = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature",
               "input_json_delta": "partial_json"}.get(kind or "")
        value = typed_field(delta, key, str, "delta.") if key else None
        if not value:
            return []
        if kind == "text_delta":
            return [TextDelta(value)]
        if kind == "thinking_delta":
            return [ThinkingDelta(value)]
        if kind == "signature_delta":
            block.signature = None
            return [ThinkingSignature(value)]
        if block.tool is not None:
            block.has_arguments = True
            return [ToolCallDelta(block.tool, value)]
        return []

    def _stop(self, block: _Block | None) -> list[Event]:
        if block is None:
            return []
        if block.signature:
            return [ThinkingSignature(block.signature)]
        if block.tool is None:
            return []
        events: list[Event] = []
        if not block.has_arguments and block.input:
            events.append(ToolCallDelta(block.tool, dumps(block.input)))
        events.append(ToolCallEnd(block.tool))
        return events
