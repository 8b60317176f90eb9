"""The gateway's one internal language: a chat request and the stream of events that answers it.

Each wire protocol (mlxgw.wires.*) parses its requests into `ChatRequest` and renders `Event`s
back into its own JSON and SSE. Backends only ever see a `ChatRequest` and only ever yield `Event`s
(native passthrough is the one exception: it relays the client's own bytes).

The shapes follow the Anthropic Messages model, which is the richer of the two: system text apart
from the turns, tool results as parts of a user turn, thinking as a part with an opaque signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# "system" is a system message the client put after the conversation began (see `Message`).
Role = Literal["user", "assistant", "system"]
# A "custom" tool takes free text rather than JSON arguments (Responses freeform tools, e.g. Codex's
# apply_patch); targets without such tools get a function with one string parameter instead.
ToolKind = Literal["function", "custom"]
FinishReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"]


# ---- content parts ---------------------------------------------------------------------------


@dataclass
class TextPart:
    text: str
    cache_control: dict | None = None


@dataclass
class ImagePart:
    """An image given either inline (`data` base64 with `media_type`) or by `url`."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None


@dataclass
class ToolCallPart:
    id: str
    name: str
    arguments: str  # the JSON text of the arguments object, exactly as produced; a custom tool's raw input
    kind: ToolKind = "function"
    namespace: str | None = None  # the Responses namespace the client knows the tool under


@dataclass
class ToolResultPart:
    tool_call_id: str
    content: list[TextPart | ImagePart] = field(default_factory=list)
    is_error: bool = False


@dataclass
class ThinkingPart:
    """Model reasoning. `signature` (Anthropic), `redacted` (Anthropic's encrypted thinking) and
    `encrypted` (OpenAI's `encrypted_content`) are opaque provider state, relayed untouched and only
    ever sent back to the kind of provider that minted it (`origin`: "anthropic" | "openai")."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    encrypted: str | None = None
    origin: str | None = None
    item_id: str | None = None  # the provider's id of the reasoning item (Responses `rs_…`)


Part = TextPart | ImagePart | ToolCallPart | ToolResultPart | ThinkingPart


@dataclass
class Message:
    """One turn. A "system" turn holds only text: a system message the client sent after the first
    user or assistant turn, kept where it was (those before it are `ChatRequest.system`).

    Why in place: agents append such notes to a conversation (Claude Code's "# Environment" block
    after the first user turn, a reminder ending a later turn); moved to the head, each one would
    rewrite the prompt's start, and a model's prefix cache would be lost for the whole prompt. Targets
    that take system messages anywhere (local chat templates, Chat Completions, Responses) get them
    in place; Anthropic, which takes none in `messages`, gets them appended to `system`. One is never
    left between an assistant's tool calls and their results (see `wires.common.merge_turns`).
    """

    role: Role
    content: list[Part]


# ---- tools -----------------------------------------------------------------------------------


@dataclass
class Tool:
    name: str
    description: str | None = None
    input_schema: dict = field(default_factory=lambda: {"type": "object", "properties": {}})
    kind: ToolKind = "function"
    namespace: str | None = None  # a Responses `namespace` tool's name: targets without namespaces see it flattened
    format: dict | None = None  # a custom tool's input format (grammar or text), as the client gave it
    strict: bool = False  # calls must match input_schema (OpenAI's and Anthropic's `strict: true`)


@dataclass
class ToolChoice:
    mode: Literal["auto", "any", "none", "tool"] = "auto"
    name: str | None = None  # with mode "tool"
    disable_parallel: bool = False


@dataclass
class ResponseFormat:
    """The answer must be JSON: any one object ("json_object") or one matching `schema`.

    `param` is the field the client used (`response_format`, `output_config.format`), so that a
    backend that cannot honour it can say so in the client's own terms.
    """

    type: Literal["json_object", "json_schema"]
    param: str
    schema: dict | None = None  # with "json_schema"
    name: str | None = None
    description: str | None = None


# ---- the request -----------------------------------------------------------------------------


@dataclass
class ChatRequest:
    model: str
    messages: list[Message]
    system: list[TextPart] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    max_tokens: int | None = None
    temperature: float | None = None  # None means "the backend's default"; 0 stays 0
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    thinking_budget: int | None = None  # tokens the client allows for reasoning; None: not asked
    user: str | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool = False  # OpenAI `logprobs`: the log probability of each output token
    top_logprobs: int | None = None  # and of this many alternatives at each position
    # The mapping's `max_output_tokens` (set by the dispatcher): no backend is asked for more.
    output_ceiling: int | None = None
    # What the client sent, for native passthrough: its protocol ("openai" | "anthropic"),
    # the parsed JSON body, and the headers an upstream of the same protocol may need.
    protocol: str = ""
    raw: dict[str, Any] | None = None
    client_headers: dict[str, str] = field(default_factory=dict)
    include_usage: bool = False  # OpenAI stream_options.include_usage
    # Hosted tools (Responses `web_search`, `file_search`…) only a Responses backend can run: kept in
    # `raw` for passthrough, named here so that a translating target can say it left them out.
    hosted_tools: list[str] = field(default_factory=list)
    prompt_cache_key: str | None = None  # the client's hint of which prompts share a prefix (Codex: its session)


# ---- the answer: a stream of events ----------------------------------------------------------


@dataclass
class Start:
    """First event of every answer. `input_tokens` is the real prompt size when known."""

    id: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


@dataclass
class TextDelta:
    text: str


@dataclass
class ThinkingDelta:
    text: str


@dataclass
class ThinkingSignature:
    signature: str


@dataclass
class RedactedThinking:
    data: str


@dataclass
class EncryptedReasoning:
    """OpenAI's opaque `encrypted_content` of the reasoning just streamed (Responses upstreams)."""

    data: str
    item_id: str | None = None


@dataclass
class ToolCallStart:
    """A tool call begins. `index` orders the calls of one answer (0, 1, ...). `name` and
    `namespace` are the client's (a target's flattened name is mapped back before events reach a
    renderer); a custom tool's call streams its raw input as the `arguments` fragments."""

    index: int
    id: str
    name: str
    kind: ToolKind = "function"
    namespace: str | None = None


@dataclass
class ToolCallDelta:
    index: int
    arguments: str  # a fragment; the concatenation of all fragments is the arguments' JSON


@dataclass
class ToolCallEnd:
    index: int


@dataclass
class UnparsedToolCall:
    """A tool call the local model wrote but its tool parser could not read: `text` is what it
    wrote, markers included. The dispatcher turns it into a bad_output failure, or into plain text."""

    text: str


@dataclass
class Usage:
    """Cumulative token counts; any field left None is unknown and keeps its previous value.

    As in Anthropic's usage, `input_tokens` excludes the cache reads and writes counted apart
    (OpenAI's `prompt_tokens` is their sum; mlxgw.wires.openai converts both ways).
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    prefill_ms: float | None = None  # the local worker's own time from admitting the prompt to the first token


@dataclass
class Finish:
    reason: FinishReason
    stop_sequence: str | None = None


Event = (
    Start
    | TextDelta
    | ThinkingDelta
    | ThinkingSignature
    | RedactedThinking
    | EncryptedReasoning
    | ToolCallStart
    | ToolCallDelta
    | ToolCallEnd
    | UnparsedToolCall
    | Usage
    | Finish
)

# Events that carry content: a stream that has produced one of these has "started" for failover.
MEANINGFUL = (TextDelta, ThinkingDelta, RedactedThinking, ToolCallStart)


@dataclass
class Progress:
    """Proof of life with nothing to send: a local model working through a long prompt (`done` of
    `total` prompt tokens), an upstream's ping or keep-alive comment. It resets the wait for the first
    byte but never counts as one, so the request can still fail over. Not an `Event`: the dispatcher
    consumes it, and no renderer ever sees it."""

    done: int | None = None
    total: int | None = None


@dataclass
class ChatResponse:
    """A whole answer, folded from its events (see `collect`)."""

    id: str | None
    model: str | None
    content: list[Part]
    finish: Finish
    usage: Usage


def collect(events: list[Event]) -> ChatResponse:
    """Fold a complete event list into one response (used for non-streaming answers)."""
    start = Start()
    content: list[Part] = []
    calls: dict[int, ToolCallPart] = {}
    usage = Usage()
    finish = Finish("end_turn")
    for ev in events:
        if isinstance(ev, Start):
            start = ev
            usage.input_tokens = ev.input_tokens
            usage.cache_read_tokens = ev.cache_read_tokens
            usage.cache_write_tokens = ev.cache_write_tokens
        elif isinstance(ev, TextDelta):
            if content and isinstance(content[-1], TextPart):
                content[-1].text += ev.text
            else:
                content.append(TextPart(ev.text))
        elif isinstance(ev, ThinkingDelta):
            last = content[-1] if content else None
            if isinstance(last, ThinkingPart) and last.redacted is None and last.signature is None:
                content[-1].text += ev.text
            else:
                content.append(ThinkingPart(ev.text))
        elif isinstance(ev, ThinkingSignature):
            if content and isinstance(content[-1], ThinkingPart):
                content[-1].signature, content[-1].origin = ev.signature, "anthropic"
            else:
                content.append(ThinkingPart("", signature=ev.signature, origin="anthropic"))
        elif isinstance(ev, EncryptedReasoning):
            last = content[-1] if content else None
            if not (isinstance(last, ThinkingPart) and last.origin is None):
                last = ThinkingPart()
                content.append(last)
            last.encrypted, last.origin, last.item_id = ev.data, "openai", ev.item_id
        elif isinstance(ev, RedactedThinking):
            content.append(ThinkingPart(redacted=ev.data, origin="anthropic"))
        elif isinstance(ev, ToolCallStart):
            calls[ev.index] = ToolCallPart(ev.id, ev.name, "", ev.kind, ev.namespace)
            content.append(calls[ev.index])
        elif isinstance(ev, ToolCallDelta):
            if ev.index in calls:
                calls[ev.index].arguments += ev.arguments
        elif isinstance(ev, Usage):
            merge_usage(usage, ev)
        elif isinstance(ev, Finish):
            finish = ev
    for call in calls.values():
        if call.kind == "function" and not call.arguments.strip():
            call.arguments = "{}"
    return ChatResponse(start.id, start.model, content, finish, usage)


def merge_usage(into: Usage, new: Usage) -> None:
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "prefill_ms"):
        value = getattr(new, name)
        if value is not None:
            setattr(into, name, value)
