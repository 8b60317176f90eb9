"""Writing canonical events as an Anthropic Messages stream, in the order strict clients require:
one content block at a time, each index its position in the final content."""

from __future__ import annotations

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
from mlxgw.errors import (
    GatewayError,
)
from mlxgw.wires.anthropic.openai_state import sealed
from mlxgw.wires.anthropic.usage import error_object, usage_to_anthropic
from mlxgw.wires.common import (
    RendererState,
    dumps,
    new_id,
)
from mlxgw.wires.sse import KEEPALIVE, frame
from mlxgw.wires.thinking_signature import sign

_BLOCK_CONTENT = (TextDelta, ThinkingDelta, ThinkingSignature, RedactedThinking, EncryptedReasoning)


@dataclass
class _QueuedCall:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)
    ended: bool = False


class StreamRenderer(RendererState):
    """Canonical events → Anthropic SSE, one content block at a time.

    Text and thinking blocks open on their first delta and close when another block starts. A tool
    call streams live when nothing else is open; a call that starts while another is live (OpenAI
    interleaves parallel calls) is buffered and sent whole, as the next block, once the live one ends.
    `include_usage` only mirrors OpenAI's signature: Anthropic streams always carry usage.
    """

    def __init__(self, model: str, request_id: str, include_usage: bool = False) -> None:
        super().__init__(model, request_id, "msg_")
        self._index = 0  # index of the open block, or of the next one when none is open
        self._block: str | None = None  # "text" | "thinking" | "tool_use"
        self._signature: str | None = None  # for the open thinking block, sent just before its stop
        self._thought: list[str] = []  # the open thinking block's text, which an unsigned block is signed over
        self._live: int | None = None  # canonical index of the tool call in the open block
        self._queued: dict[int, _QueuedCall] = {}
        self._held: list[Event] = []  # text or thinking that came while a tool call was live

    def render(self, event: Event) -> bytes:
        if isinstance(event, Start):
            self._take_start(event)
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
            self._thought.append(event.text)
        elif isinstance(event, ThinkingSignature):
            out += self._open("thinking")
            self._signature = event.signature
        elif isinstance(event, EncryptedReasoning):
            out += self._open("thinking")
            self._signature = sealed(event.data, event.item_id)
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
        if self._block == "thinking":
            # Thinking no provider signed (a local model's, a reasoning summary) gets mlxgw's signature.
            signature = self._signature or sign("".join(self._thought))
            out += self._delta({"type": "signature_delta", "signature": signature})
        out += self._event({"type": "content_block_stop", "index": self._index})
        self._index += 1
        self._block = self._signature = self._live = None
        self._thought = []
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
