"""OpenAI Chat Completions streams: reading an upstream's chunks, writing ours."""

from __future__ import annotations

import json
import time
from typing import Any

from mlxgw.canonical import (
    Event,
    Finish,
    FinishReason,
    Start,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    merge_usage,
)
from mlxgw.errors import (
    GatewayError,
    UnreadableUpstream,
)
from mlxgw.wires.common import (
    FINISH_FROM_OPENAI,
    FINISH_TO_OPENAI,
    RendererState,
    dumps,
    new_id,
)
from mlxgw.wires.error_map import (
    ERROR_TYPES,
    stream_error,
)
from mlxgw.wires.sse import KEEPALIVE, frame
from mlxgw.wires.upstream_fields import typed, typed_field


def error_object(err: GatewayError) -> dict:
    return {"message": err.message, "type": ERROR_TYPES[err.kind]["openai"], "param": err.param, "code": err.code}


def finish_from_openai(reason: Any, had_tool_calls: bool) -> FinishReason:
    mapped = FINISH_FROM_OPENAI.get(str(reason), "end_turn")
    # Some OpenAI-compatible servers say "stop" after tool calls; Anthropic clients need tool_use.
    return "tool_use" if had_tool_calls and mapped == "end_turn" else mapped


def usage_from_openai(usage: Any) -> Usage:
    """Canonical input_tokens excludes cache reads (Anthropic's convention); OpenAI's prompt_tokens includes them."""
    usage = typed(usage, dict, "usage")
    if usage is None:
        return Usage()
    details = typed_field(usage, "prompt_tokens_details", dict, "usage.") or {}
    cached = typed_field(details, "cached_tokens", int, "usage.prompt_tokens_details.")
    prompt = typed_field(usage, "prompt_tokens", int, "usage.")
    return Usage(
        input_tokens=prompt - (cached or 0) if prompt is not None else None,
        output_tokens=typed_field(usage, "completion_tokens", int, "usage."),
        cache_read_tokens=cached,
    )


def usage_to_openai(usage: Usage) -> dict:
    prompt = (usage.input_tokens or 0) + (usage.cache_read_tokens or 0) + (usage.cache_write_tokens or 0)
    completion = usage.output_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens or 0},
    }


class StreamParser:
    """An upstream's `chat.completion.chunk` frames → canonical events.

    Finish is held back until the usage chunk (or `[DONE]`) arrives, so that a renderer writing
    Anthropic's `message_delta` already knows the output token count.
    """

    def __init__(self) -> None:
        self.finished = False
        self.done = False  # `[DONE]` came: nothing follows, however long the upstream keeps the connection
        self._started = False
        self._calls: dict[int, int] = {}  # OpenAI tool-call index → canonical index
        self._ids: dict[int, str | None] = {}  # OpenAI tool-call index → the id its call started with
        self._call_count = 0
        self._open: list[int] = []
        self._pending: Finish | None = None

    def feed(self, event: str | None, data: str) -> list[Event]:
        if data.strip() == "[DONE]":
            self.done = True
            return self._complete()
        try:
            chunk = json.loads(data)
        except ValueError:
            chunk = None
        if not isinstance(chunk, dict):
            raise UnreadableUpstream(f"upstream sent a malformed stream chunk: {data[:200]!r}")
        if "error" in chunk:
            raise stream_error(chunk["error"], data)
        events: list[Event] = []
        if not self._started:
            self._started = True
            events.append(Start(id=typed_field(chunk, "id", str), model=typed_field(chunk, "model", str)))
        choices = typed_field(chunk, "choices", list)
        choice = (typed(choices[0], dict, "choices[0]") if choices else None) or {}
        where = "choices[0].delta."
        delta = typed_field(choice, "delta", dict, "choices[0].") or {}
        reasoning = typed_field(delta, "reasoning_content", str, where) or typed_field(delta, "reasoning", str, where)
        if reasoning:
            events.append(ThinkingDelta(reasoning))
        if content := typed_field(delta, "content", str, where):
            events.append(TextDelta(content))
        for i, call in enumerate(typed_field(delta, "tool_calls", list, where) or []):
            if (call := typed(call, dict, f"{where}tool_calls[{i}]")) is not None:
                events.extend(self._tool_call(call, f"{where}tool_calls[{i}]."))
        usage = typed_field(chunk, "usage", dict)
        if usage is not None:
            events.append(usage_from_openai(usage))
        finish = typed_field(choice, "finish_reason", str, "choices[0].")
        if finish and not self.finished and self._pending is None:
            events.extend(self._end_calls())
            self._pending = Finish(finish_from_openai(finish, bool(self._calls)))
        if self._pending and usage is not None:
            events.append(self._pending)
            self._pending, self.finished = None, True
        return events

    def end(self) -> list[Event]:
        """At end of stream without `[DONE]`: the held-back Finish, if the upstream sent one."""
        if self._pending is None:
            return []
        events: list[Event] = [self._pending]
        self._pending, self.finished = None, True
        return events

    def _complete(self) -> list[Event]:
        if self.finished:
            return []
        events = self._end_calls()
        events.append(self._pending or Finish("tool_use" if self._calls else "end_turn"))
        self._pending, self.finished = None, True
        return events

    def _end_calls(self) -> list[Event]:
        ends: list[Event] = [ToolCallEnd(i) for i in self._open]
        self._open.clear()
        return ends

    def _tool_call(self, call: dict, where: str) -> list[Event]:
        index = typed_field(call, "index", int, where)
        call_id = typed_field(call, "id", str, where)
        if index is None:
            # Servers that omit `index` send each call whole or in order: a new id means a new call.
            index = len(self._calls) if call_id or not self._calls else max(self._calls)
        function = typed_field(call, "function", dict, where) or {}
        events: list[Event] = []
        # A new id at an index in use is a new call: some servers send every parallel call as index 0.
        if index not in self._calls or (call_id and self._ids[index] not in (None, call_id)):
            canonical = self._calls[index] = self._call_count
            self._call_count += 1
            self._ids[index] = call_id
            self._open.append(canonical)
            name = typed_field(function, "name", str, where + "function.")
            events.append(ToolCallStart(canonical, call_id or new_id("call_"), name or ""))
        arguments = function.get("arguments")
        # Some servers send the arguments as an object rather than as its JSON text.
        arguments = dumps(arguments) if isinstance(arguments, dict) else typed(arguments, str, where + "function.arguments")
        if arguments and self._calls[index] in self._open:
            events.append(ToolCallDelta(self._calls[index], arguments))
        return events


class StreamRenderer(RendererState):
    """Canonical events → our `chat.completion.chunk` SSE frames for an OpenAI client."""

    def __init__(self, model: str, request_id: str, include_usage: bool = False) -> None:
        super().__init__(model, request_id, "chatcmpl-")
        self.include_usage = include_usage
        self._created = int(time.time())
        self._tool_index: dict[int, int] = {}
        self._without_arguments: set[int] = set()

    def render(self, event: Event) -> bytes:
        if isinstance(event, Start):
            self._take_start(event)
            return self._begin()
        out = self._begin()
        if isinstance(event, TextDelta) and event.text:
            out += self._chunk({"content": event.text})
        elif isinstance(event, ThinkingDelta) and event.text:
            out += self._chunk({"reasoning_content": event.text})
        elif isinstance(event, ToolCallStart):
            index = self._tool_index[event.index] = len(self._tool_index)
            self._without_arguments.add(event.index)
            call = {
                "index": index,
                "id": event.id or new_id("call_"),
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            out += self._chunk({"tool_calls": [call]})
        elif isinstance(event, ToolCallDelta) and event.arguments and event.index in self._tool_index:
            self._without_arguments.discard(event.index)
            out += self._arguments(event.index, event.arguments)
        elif isinstance(event, ToolCallEnd) and event.index in self._without_arguments:
            self._without_arguments.discard(event.index)
            out += self._arguments(event.index, "{}")
        elif isinstance(event, Usage):
            merge_usage(self._usage, event)
        elif isinstance(event, Finish) and not self._finished:
            self._finished = True
            for index in sorted(self._without_arguments):
                out += self._arguments(index, "{}")
            out += self._chunk({}, FINISH_TO_OPENAI[event.reason])
        return out

    def ping(self) -> bytes:
        """A keep-alive, e.g. during a long prefill: an SSE comment, which clients skip."""
        return KEEPALIVE

    def error(self, err: GatewayError) -> bytes:
        self._failed = True
        return frame(dumps({"error": error_object(err)}))

    def close(self) -> bytes:
        if self._failed:
            return b""
        if not self._finished:
            return self.error(GatewayError("api_error", "the answer ended before it was complete"))
        out = b""
        if self.include_usage:
            out += self._frame({"choices": [], "usage": usage_to_openai(self._usage)})
        return out + frame("[DONE]")

    def _begin(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._chunk({"role": "assistant", "content": ""})

    def _arguments(self, index: int, arguments: str) -> bytes:
        # A call without arguments still needs "{}": OpenAI clients json.loads the concatenation.
        call = {"index": self._tool_index[index], "function": {"arguments": arguments}}
        return self._chunk({"tool_calls": [call]})

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._frame({"choices": [choice]})

    def _frame(self, fields: dict) -> bytes:
        base = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
        }
        return frame(dumps(base | fields))
