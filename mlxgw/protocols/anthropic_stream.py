"""Anthropic Messages streams: reading an upstream's events, writing ours."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
    Usage,
    merge_usage,
)
from mlxgw.errors import GatewayError, UnreadableUpstream

from .common import FINISH_FROM_ANTHROPIC, dumps, log, new_id, response_id, stream_error
from .sse import KEEPALIVE, frame
from .upstream_fields import typed, typed_field

# `kind` → Anthropic error type, per PROTOCOLS.md. 502 and 503 have no type of their own: a bad
# upstream answer is an api_error; "no backend can take this now" is overloaded_error, which tells
# clients to come back later (the SDK retries both).
ERROR_TYPES: dict[str, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "api_error": "api_error",
    "bad_gateway": "api_error",
    "unavailable": "overloaded_error",
    "timeout": "timeout_error",
    "overloaded": "overloaded_error",
}


def error_object(err: GatewayError) -> dict:
    kind = "billing_error" if err.status == 402 else ERROR_TYPES[err.kind]
    return {"type": kind, "message": err.message}


def usage_from_anthropic(usage: Any, where: str = "usage") -> Usage:
    usage = typed(usage, dict, where)
    if usage is None:
        return Usage()

    def count(key: str) -> int | None:
        return typed_field(usage, key, int, where + ".")

    return Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_read_tokens=count("cache_read_input_tokens"),
        cache_write_tokens=count("cache_creation_input_tokens"),
    )


def usage_to_anthropic(usage: Usage) -> dict:
    return {
        "input_tokens": usage.input_tokens or 0,
        "output_tokens": usage.output_tokens or 0,
        "cache_read_input_tokens": usage.cache_read_tokens or 0,
        "cache_creation_input_tokens": usage.cache_write_tokens or 0,
    }


# ---- reading an upstream's stream --------------------------------------------------------------


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


# ---- writing our stream ------------------------------------------------------------------------


_BLOCK_CONTENT = (TextDelta, ThinkingDelta, ThinkingSignature, RedactedThinking)


@dataclass
class _QueuedCall:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)
    ended: bool = False


class StreamRenderer:
    """Canonical events → Anthropic SSE, one content block at a time.

    Text and thinking blocks open on their first delta and close when another block starts. A tool
    call streams live when nothing else is open; a call that starts while another is live (OpenAI
    interleaves parallel calls) is buffered and sent whole, as the next block, once the live one ends.
    `include_usage` only mirrors OpenAI's signature: Anthropic streams always carry usage.
    """

    def __init__(self, model: str, request_id: str, include_usage: bool = False) -> None:
        self.model = model
        self.request_id = request_id
        self._id = response_id(None, request_id, "msg_")
        self._usage = Usage()
        self._started = False
        self._finished = False
        self._failed = False
        self._index = 0  # index of the open block, or of the next one when none is open
        self._block: str | None = None  # "text" | "thinking" | "tool_use"
        self._signature: str | None = None  # for the open thinking block, sent just before its stop
        self._live: int | None = None  # canonical index of the tool call in the open block
        self._queued: dict[int, _QueuedCall] = {}
        self._held: list[Event] = []  # text or thinking that came while a tool call was live

    def render(self, event: Event) -> bytes:
        if isinstance(event, Start):
            if event.id and not self._started:
                self._id = event.id
            merge_usage(
                self._usage,
                Usage(event.input_tokens, None, event.cache_read_tokens, event.cache_write_tokens),
            )
            return self._begin()
        if self._finished or self._failed:
            return b""
        out = self._begin()
        if self._live is not None and isinstance(event, _BLOCK_CONTENT):
            # No block may open inside a live tool call (its arguments are still coming): this
            # content becomes the block after the call.
            self._held.append(event)
            return out
        if isinstance(event, TextDelta) and event.text:
            out += self._open("text") + self._delta({"type": "text_delta", "text": event.text})
        elif isinstance(event, ThinkingDelta) and event.text:
            if self._block == "thinking" and self._signature is not None:
                out += self._close()  # a signed thinking block is complete; this is a new one
            out += self._open("thinking") + self._delta({"type": "thinking_delta", "thinking": event.text})
        elif isinstance(event, ThinkingSignature):
            out += self._open("thinking")
            self._signature = event.signature
        elif isinstance(event, RedactedThinking):
            out += self._settle() + self._whole({"type": "redacted_thinking", "data": event.data})
        elif isinstance(event, ToolCallStart):
            out += self._tool_start(event)
        elif isinstance(event, ToolCallDelta) and event.arguments:
            if event.index == self._live:
                out += self._delta({"type": "input_json_delta", "partial_json": event.arguments})
            elif event.index in self._queued:
                self._queued[event.index].arguments.append(event.arguments)
        elif isinstance(event, ToolCallEnd):
            if event.index == self._live:
                out += self._close() + self._promote()
                if self._live is None:
                    out += self._release()
            elif event.index in self._queued:
                self._queued[event.index].ended = True
        elif isinstance(event, Usage):
            merge_usage(self._usage, event)
        elif isinstance(event, Finish):
            out += self._settle() + self._release() + self._settle() + self._finish(event)
        return out

    def _release(self) -> bytes:
        held, self._held = self._held, []
        return b"".join(self.render(event) for event in held)

    def ping(self) -> bytes:
        """A keep-alive, e.g. during a long prefill; clients ignore it. A `ping` event may only follow
        message_start, which waits for the real input token count: before it, an SSE comment. After
        message_stop or an error, nothing."""
        if self._finished or self._failed:
            return b""
        return self._event({"type": "ping"}) if self._started else KEEPALIVE

    def error(self, err: GatewayError) -> bytes:
        self._failed = True
        body = {"type": "error", "error": error_object(err), "request_id": self.request_id}
        return frame(dumps(body), "error")

    def close(self) -> bytes:
        if self._finished or self._failed:
            return b""
        return self.error(GatewayError("api_error", "the answer ended before it was complete"))

    # -- message framing

    def _begin(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        usage = usage_to_anthropic(self._usage)
        usage["output_tokens"] = 0
        message = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return self._event({"type": "message_start", "message": message})

    def _finish(self, event: Finish) -> bytes:
        self._finished = True
        usage = {k: v for k, v in usage_to_anthropic(self._usage).items() if v or k == "output_tokens"}
        delta = {"stop_reason": event.reason, "stop_sequence": event.stop_sequence}
        return self._event({"type": "message_delta", "delta": delta, "usage": usage}) + self._event(
            {"type": "message_stop"}
        )

    # -- blocks

    def _open(self, kind: str) -> bytes:
        if self._block == kind:
            return b""
        out = self._settle()
        start = (
            {"type": "text", "text": ""}
            if kind == "text"
            else {"type": "thinking", "thinking": "", "signature": ""}
        )
        self._block = kind
        return out + self._event(
            {"type": "content_block_start", "index": self._index, "content_block": start}
        )

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        out = b""
        if self._block == "thinking" and self._signature:
            out += self._delta({"type": "signature_delta", "signature": self._signature})
        out += self._event({"type": "content_block_stop", "index": self._index})
        self._index += 1
        self._block = self._signature = self._live = None
        return out

    def _settle(self) -> bytes:
        """Close the open block and send every buffered tool call whole after it."""
        out = self._close()
        for call in self._queued.values():
            out += self._whole(self._tool_use(call.id, call.name), "".join(call.arguments))
        self._queued.clear()
        return out

    def _whole(self, block: dict, arguments: str = "") -> bytes:
        out = self._event({"type": "content_block_start", "index": self._index, "content_block": block})
        if arguments:
            out += self._delta({"type": "input_json_delta", "partial_json": arguments})
        out += self._event({"type": "content_block_stop", "index": self._index})
        self._index += 1
        return out

    # -- tool calls

    def _tool_use(self, call_id: str, name: str) -> dict:
        # The SDK keeps this `input` only when no input_json_delta follows, which is what {} means.
        return {"type": "tool_use", "id": call_id or new_id("toolu_"), "name": name, "input": {}}

    def _tool_start(self, event: ToolCallStart) -> bytes:
        if event.index == self._live or event.index in self._queued:
            return b""
        if self._live is not None:
            self._queued[event.index] = _QueuedCall(event.id, event.name)
            return b""
        out = self._settle()
        self._block, self._live = "tool_use", event.index
        block = self._tool_use(event.id, event.name)
        return out + self._event(
            {"type": "content_block_start", "index": self._index, "content_block": block}
        )

    def _promote(self) -> bytes:
        """After the live call ends: send finished buffered calls whole; the first unfinished goes live."""
        out = b""
        for index, call in list(self._queued.items()):
            del self._queued[index]
            if call.ended:
                out += self._whole(self._tool_use(call.id, call.name), "".join(call.arguments))
                continue
            self._block, self._live = "tool_use", index
            block = self._tool_use(call.id, call.name)
            out += self._event({"type": "content_block_start", "index": self._index, "content_block": block})
            if call.arguments:
                out += self._delta({"type": "input_json_delta", "partial_json": "".join(call.arguments)})
            break
        return out

    def _delta(self, delta: dict) -> bytes:
        return self._event({"type": "content_block_delta", "index": self._index, "delta": delta})

    def _event(self, payload: dict) -> bytes:
        return frame(dumps(payload), payload["type"])
