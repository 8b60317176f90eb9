"""Writing canonical events as a Responses stream: the semantic events the official SDK accumulates,
each with its sequence number and indexes.

`response.created` and `response.in_progress` open the stream; each output item (reasoning, message,
function or custom tool call) is `output_item.added`, its parts and deltas, then `output_item.done`
with the item whole; `response.completed` (or `response.incomplete`, when the answer was cut at
`max_output_tokens`) carries the final Response, usage included. Text and reasoning items close when
another item begins; tool calls stream side by side, as parallel calls may interleave.

A failure after the first byte is `response.failed`, which Codex and the Agents SDK read, then an
`error` event whose `error` object makes the Python SDK raise (it yields `response.failed` as a plain
event), then the end of the stream. Keep-alives are `response.in_progress` events, not SSE comments:
Codex's idle timer counts only events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mlxgw.canonical import (
    EncryptedReasoning,
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
from mlxgw.errors import GatewayError
from mlxgw.wires.common import RendererState, dumps, new_id
from mlxgw.wires.openai.stream import error_object
from mlxgw.wires.responses.render import (
    ANTHROPIC_REDACTED,
    ANTHROPIC_SIGNATURE,
    INCOMPLETE,
    TOOL_SEARCH,
    call_item,
    failure,
    message_item,
    output_text,
    reasoning_item,
    response_object,
    searches_tools,
    status_for,
    summarised,
    tool_search_item,
)
from mlxgw.wires.sse import frame


@dataclass
class _Item:
    """An output item still open."""

    index: int  # its output_index
    id: str
    text: list[str] = field(default_factory=list)  # text, reasoning, or a call's arguments so far
    encrypted: str | None = None  # a reasoning item's opaque state
    call_id: str = ""
    name: str = ""
    kind: str = "function"  # a ToolKind, or "tool_search" for a call of the client's own tool search
    namespace: str | None = None


class StreamRenderer(RendererState):
    """Canonical events → Responses SSE. `echo` is the client's request body, whose settings every
    Response snapshot repeats; `response` holds the final Response once the stream completed (for
    the store). `include_usage` only mirrors the other wires' signature: a Response always has usage."""

    def __init__(self, model: str, request_id: str, include_usage: bool = False, *, echo: dict | None = None) -> None:
        super().__init__(model, request_id, "resp_")
        self.echo = echo
        self.response: dict | None = None
        self._summary = summarised(echo)
        self._searches = searches_tools(echo)
        self._created = int(time.time())
        self._sequence = 0
        self._output: list[dict | None] = []  # by output_index: the finished item, None while open
        self._message: _Item | None = None
        self._reasoning: _Item | None = None
        self._calls: dict[int, _Item] = {}  # canonical call index → its open item

    def render(self, event: Event) -> bytes:
        if isinstance(event, Start):
            # The id stays the gateway's own (`resp_…`): stored responses are found by it.
            merge_usage(self._usage, Usage(event.input_tokens, None, event.cache_read_tokens, event.cache_write_tokens))
            return self._begin()
        if self._finished or self._failed:
            return b""
        out = self._begin()
        if isinstance(event, TextDelta) and event.text:
            out += self._close_reasoning() + self._text(event.text)
        elif isinstance(event, ThinkingDelta) and event.text:
            if self._reasoning is not None and self._reasoning.encrypted is not None:
                out += self._close_reasoning()  # a signed reasoning block is complete; this is the next
            out += self._close_message() + self._thinking(event.text)
        elif isinstance(event, ThinkingSignature):
            out += self._close_message() + self._open_reasoning()
            self._reasoning.encrypted = ANTHROPIC_SIGNATURE + event.signature
        elif isinstance(event, EncryptedReasoning):
            if self._reasoning is not None and self._reasoning.encrypted is not None:
                out += self._close_reasoning()
            out += self._close_message() + self._open_reasoning(event.item_id)
            self._reasoning.encrypted = event.data
        elif isinstance(event, RedactedThinking):
            out += self._close_message() + self._close_reasoning() + self._open_reasoning()
            self._reasoning.encrypted = ANTHROPIC_REDACTED + event.data
            out += self._close_reasoning()
        elif isinstance(event, ToolCallStart) and event.index not in self._calls:
            out += self._close_message() + self._close_reasoning() + self._open_call(event)
        elif isinstance(event, ToolCallDelta) and event.arguments and event.index in self._calls:
            out += self._arguments(self._calls[event.index], event.arguments)
        elif isinstance(event, ToolCallEnd) and event.index in self._calls:
            out += self._close_call(self._calls.pop(event.index), "completed")
        elif isinstance(event, Usage):
            merge_usage(self._usage, event)
        elif isinstance(event, Finish):
            out += self._finish(event)
        return out

    def ping(self) -> bytes:
        """A keep-alive, e.g. during a long prefill: `response.in_progress` again, as Codex's idle
        timer ignores SSE comments (the stream's first events before the answer has begun)."""
        if self._finished or self._failed:
            return b""
        if not self._started:
            return self._begin()
        return self._event("response.in_progress", response=self._snapshot("in_progress", []))

    def error(self, err: GatewayError) -> bytes:
        if self._finished or self._failed:
            return b""
        out = self._begin()
        self._failed = True
        snapshot = self._snapshot("failed", [item for item in self._output if item is not None], error=failure(err))
        out += self._event("response.failed", response=snapshot)
        body = error_object(err)
        return out + self._event("error", code=body["code"], message=body["message"], param=body["param"], error=body)

    def close(self) -> bytes:
        if self._finished or self._failed:
            return b""
        return self.error(GatewayError("api_error", "the answer ended before it was complete"))

    # -- the response

    def _begin(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        snapshot = self._snapshot("in_progress", [])
        return self._event("response.created", response=snapshot) + self._event("response.in_progress", response=snapshot)

    def _finish(self, event: Finish) -> bytes:
        status = status_for(event.reason)
        out = self._close_message(status) + self._close_reasoning()
        for index in sorted(self._calls):
            out += self._close_call(self._calls.pop(index), status)
        self._finished = True
        output = [item for item in self._output if item is not None]
        self.response = self._snapshot(status, output, usage=self._usage, incomplete=INCOMPLETE.get(event.reason))
        return out + self._event(f"response.{status}", response=self.response)

    def _snapshot(self, status: str, output: list[dict], **kw) -> dict:
        kw.setdefault("usage", None)
        return response_object(self._id, self._created, self.model, self.echo, status, output, **kw)

    def _add(self, item: dict) -> tuple[int, bytes]:
        index = len(self._output)
        self._output.append(None)
        return index, self._event("response.output_item.added", output_index=index, item=item)

    def _done(self, index: int, item: dict) -> bytes:
        self._output[index] = item
        return self._event("response.output_item.done", output_index=index, item=item)

    # -- message text

    def _text(self, text: str) -> bytes:
        out = b""
        if self._message is None:
            item_id = new_id("msg_")
            index, out = self._add(message_item(item_id, None, "in_progress"))
            self._message = _Item(index, item_id)
            out += self._event("response.content_part.added", **self._at(self._message), content_index=0, part=output_text(""))
        self._message.text.append(text)
        return out + self._event(
            "response.output_text.delta", **self._at(self._message), content_index=0, delta=text, logprobs=[]
        )

    def _close_message(self, status: str = "completed") -> bytes:
        item, self._message = self._message, None
        if item is None:
            return b""
        text = "".join(item.text)
        at = {**self._at(item), "content_index": 0}
        return (
            self._event("response.output_text.done", **at, text=text, logprobs=[])
            + self._event("response.content_part.done", **at, part=output_text(text))
            + self._done(item.index, message_item(item.id, text, status))
        )

    # -- reasoning

    def _open_reasoning(self, item_id: str | None = None) -> bytes:
        if self._reasoning is not None:
            return b""
        item_id = item_id or new_id("rs_")
        index, out = self._add(reasoning_item(item_id, None, self._summary, None, "in_progress"))
        self._reasoning = _Item(index, item_id)
        return out

    def _thinking(self, text: str) -> bytes:
        out = self._open_reasoning()
        item = self._reasoning
        at = self._at(item)
        if not item.text:
            if self._summary:
                out += self._event("response.reasoning_summary_part.added", **at, summary_index=0, part=_summary_text(""))
            else:
                out += self._event("response.content_part.added", **at, content_index=0, part=_reasoning_text(""))
        item.text.append(text)
        if self._summary:
            return out + self._event("response.reasoning_summary_text.delta", **at, summary_index=0, delta=text)
        return out + self._event("response.reasoning_text.delta", **at, content_index=0, delta=text)

    def _close_reasoning(self) -> bytes:
        item, self._reasoning = self._reasoning, None
        if item is None:
            return b""
        text = "".join(item.text)
        at = self._at(item)
        out = b""
        if text and self._summary:
            out += self._event("response.reasoning_summary_text.done", **at, summary_index=0, text=text)
            out += self._event("response.reasoning_summary_part.done", **at, summary_index=0, part=_summary_text(text))
        elif text:
            out += self._event("response.reasoning_text.done", **at, content_index=0, text=text)
            out += self._event("response.content_part.done", **at, content_index=0, part=_reasoning_text(text))
        return out + self._done(item.index, reasoning_item(item.id, text, self._summary, item.encrypted, "completed"))

    # -- tool calls

    def _open_call(self, event: ToolCallStart) -> bytes:
        call_id = event.id or new_id("call_")
        if self._searches and (event.name, event.namespace, event.kind) == (TOOL_SEARCH, None, "function"):
            item_id = new_id("tsc_")
            index, out = self._add(tool_search_item(item_id, call_id, "", "in_progress"))
            self._calls[event.index] = _Item(index, item_id, call_id=call_id, kind=TOOL_SEARCH)
            return out
        item_id = new_id("ctc_" if event.kind == "custom" else "fc_")
        index, out = self._add(call_item(item_id, call_id, event.name, "", event.kind, event.namespace, "in_progress"))
        self._calls[event.index] = _Item(index, item_id, call_id=call_id, name=event.name, kind=event.kind, namespace=event.namespace)
        return out

    def _arguments(self, item: _Item, fragment: str) -> bytes:
        item.text.append(fragment)
        if item.kind == TOOL_SEARCH:
            return b""  # a tool search's arguments are an object, sent whole when the call is done
        kind = "custom_tool_call_input" if item.kind == "custom" else "function_call_arguments"
        return self._event(f"response.{kind}.delta", **self._at(item), delta=fragment)

    def _close_call(self, item: _Item, status: str) -> bytes:
        if item.kind == TOOL_SEARCH:
            return self._done(item.index, tool_search_item(item.id, item.call_id, "".join(item.text), status))
        out = b""
        if item.kind == "function" and not item.text:
            out += self._arguments(item, "{}")  # a call without arguments still needs "{}": clients json.loads them
        arguments = "".join(item.text)
        if item.kind == "custom":
            out += self._event("response.custom_tool_call_input.done", **self._at(item), input=arguments)
        else:
            out += self._event("response.function_call_arguments.done", **self._at(item), arguments=arguments)
        done = call_item(item.id, item.call_id, item.name, arguments, item.kind, item.namespace, status)
        return out + self._done(item.index, done)

    # -- framing

    @staticmethod
    def _at(item: _Item) -> dict:
        return {"item_id": item.id, "output_index": item.index}

    def _event(self, kind: str, **fields) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return frame(dumps(payload), kind)


def _summary_text(text: str) -> dict:
    return {"type": "summary_text", "text": text}


def _reasoning_text(text: str) -> dict:
    return {"type": "reasoning_text", "text": text}
