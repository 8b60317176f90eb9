"""Reading a Responses upstream's stream of semantic events into canonical events."""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlxgw.canonical import (
    EncryptedReasoning,
    Event,
    Start,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
)
from mlxgw.errors import UnreadableUpstream
from mlxgw.wires.common import log
from mlxgw.wires.error_map import stream_error
from mlxgw.wires.responses.upstream import (
    call_arguments,
    call_start,
    content_text,
    error_json,
    failure,
    finish_from_response,
    reasoning_events,
    usage_from_responses,
)
from mlxgw.wires.upstream_fields import typed, typed_field

_CALLS = ("function_call", "custom_tool_call")
_ARGUMENT_DELTAS = ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta")
_ARGUMENTS_DONE = ("response.function_call_arguments.done", "response.custom_tool_call_input.done")
_THINKING_DELTAS = ("response.reasoning_summary_text.delta", "response.reasoning_text.delta")


@dataclass
class _Item:
    """One output item being streamed, by its output_index."""

    type: str
    call: int | None = None  # canonical tool-call index of a call item
    started: bool = False  # its ToolCallStart went out
    streamed: bool = False  # deltas of its content came (so `done` repeats nothing)
    ended: bool = False  # a call's ToolCallEnd went out
    thought: bool = False  # a reasoning item's thinking text came


class StreamParser:
    """An upstream's Responses SSE events → canonical events. Raises UpstreamError on `error` and
    `response.failed`; `response.completed` and `response.incomplete` end the answer."""

    def __init__(self) -> None:
        self.finished = False
        self.done = False
        self._items: dict[int, _Item] = {}
        self._calls = 0
        self._refused = False

    def feed(self, event: str | None, data: str) -> list[Event]:
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise UnreadableUpstream(f"upstream sent a malformed stream event: {data[:200]!r}")
        kind = typed_field(payload, "type", str) or event
        if kind == "error":
            raise stream_error(error_json(payload), data)
        if kind == "response.failed":
            self.done = True
            raise failure(typed_field(payload, "response", dict) or {}, data)
        if kind == "response.created":
            response = typed_field(payload, "response", dict) or {}
            return [Start(typed_field(response, "id", str, "response."), typed_field(response, "model", str, "response."))]
        if kind in ("response.completed", "response.incomplete"):
            return self._finish(typed_field(payload, "response", dict) or {})
        index = typed_field(payload, "output_index", int)
        if kind == "response.output_item.added":
            return self._added(index, typed_field(payload, "item", dict) or {})
        if kind == "response.output_item.done":
            return self._item_done(index, typed_field(payload, "item", dict) or {})
        item = self._items.get(index) if index is not None else None
        delta = typed_field(payload, "delta", str) or ""
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            self._refused = self._refused or kind == "response.refusal.delta"
            if item is not None:
                item.streamed = True
            return [TextDelta(delta)] if delta else []
        if kind in _THINKING_DELTAS:
            return self._thinking(item, delta)
        if kind == "response.reasoning_summary_part.added" and item is not None and item.thought:
            return [ThinkingDelta("\n\n")]  # the next part of the summary: a paragraph of its own
        if kind in _ARGUMENT_DELTAS:
            if item is None or item.call is None or not delta:
                return []
            item.streamed = True
            return [ToolCallDelta(item.call, delta)]
        if kind in _ARGUMENTS_DONE and item is not None and item.call is not None and not item.streamed:
            whole = typed_field(payload, "arguments" if kind.startswith("response.function") else "input", str) or ""
            item.streamed = bool(whole)
            return [ToolCallDelta(item.call, whole)] if whole else []
        return []

    def end(self) -> list[Event]:
        """Nothing is held back in this protocol: the answer ends with its final event or not at all."""
        return []

    def _added(self, index: int | None, added: dict) -> list[Event]:
        kind = typed_field(added, "type", str, "item.") or ""
        item = _Item(kind)
        if index is not None:
            self._items[index] = item
        if kind not in _CALLS:
            return []
        item.call, item.started = self._calls, True
        self._calls += 1
        return [call_start(item.call, added, "item.")]

    def _item_done(self, index: int | None, done: dict) -> list[Event]:
        """An item whole: what its deltas did not already carry (a server may send only this)."""
        kind = typed_field(done, "type", str, "item.") or ""
        item = self._items.get(index) if index is not None else None
        if item is None:
            item = _Item(kind)
            if index is not None:
                self._items[index] = item
        if kind == "reasoning":
            events = reasoning_events(done, "item.")
            # Its thinking came as deltas already: only the encrypted state is new.
            return [ev for ev in events if isinstance(ev, EncryptedReasoning)] if item.thought else events
        if kind == "message":
            if item.streamed:
                return []
            events: list[Event] = []
            for j, part in enumerate(typed_field(done, "content", list, "item.") or []):
                text, refusal = content_text(typed(part, dict, f"item.content[{j}]") or {}, f"item.content[{j}].")
                self._refused = self._refused or refusal
                if text:
                    events.append(TextDelta(text))
            return events
        if kind not in _CALLS:
            log.debug("ignoring a Responses output item of type %r", kind)
            return []
        events = []
        if not item.started:
            item.call, item.started = self._calls, True
            self._calls += 1
            events.append(call_start(item.call, done, "item."))
        assert item.call is not None
        if not item.streamed and (arguments := call_arguments(done, "item.")):
            events.append(ToolCallDelta(item.call, arguments))
        item.streamed = item.ended = True
        events.append(ToolCallEnd(item.call))
        return events

    def _thinking(self, item: _Item | None, delta: str) -> list[Event]:
        if not delta:
            return []
        if item is not None:
            item.thought = True
        return [ThinkingDelta(delta)]

    def _finish(self, response: dict) -> list[Event]:
        self.finished = self.done = True
        usage = usage_from_responses(response.get("usage"), "response.usage")
        # A call whose item never said it was done still ends before the answer does.
        events: list[Event] = [ToolCallEnd(i.call) for i in self._items.values() if i.call is not None and not i.ended]
        return [*events, usage, finish_from_response(response, self._calls > 0, self._refused, "response.")]
