"""What the wires share besides errors and field checks: finish-reason tables, turn merging, ids
and JSON helpers."""

from __future__ import annotations

import json
import logging
import secrets
import string
from collections.abc import Mapping
from typing import Any

from mlxgw.canonical import FinishReason, Message, Start, ToolCallPart, ToolResultPart, Usage, merge_usage

log = logging.getLogger("mlxgw.wires")


FINISH_TO_OPENAI: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


FINISH_FROM_OPENAI: dict[str, FinishReason] = {
    "stop": "end_turn",  # OpenAI does not say whether a stop string matched
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


FINISH_FROM_ANTHROPIC: dict[str, FinishReason] = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "pause_turn": "pause_turn",
    "refusal": "refusal",
    "model_context_window_exceeded": "max_tokens",
}


def lower_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers or {}).items()}


def merge_turns(messages: list[Message]) -> list[Message]:
    """Drop empty turns and join consecutive turns of the same role (Anthropic needs alternation).

    Within a user turn, tool results go first: Anthropic requires them right after the tool calls.
    System turns are never joined, with each other or with the turns around them; one found between
    an assistant's tool calls and the last of their results moves to just after that result (every
    API and chat template wants the results right after the calls).
    """
    merged: list[Message] = []
    for msg in _after_tool_results(messages):
        if not msg.content:
            continue
        if merged and merged[-1].role == msg.role != "system":
            merged[-1] = Message(msg.role, merged[-1].content + msg.content)
        else:
            merged.append(Message(msg.role, list(msg.content)))
    for msg in merged:
        if msg.role == "user":
            msg.content.sort(key=lambda part: not isinstance(part, ToolResultPart))
    return merged


def _after_tool_results(messages: list[Message]) -> list[Message]:
    """`messages` with each system turn that came while tool calls awaited results held back until
    the last of those results (or the first turn that is not a result: the calls went unanswered)."""
    out: list[Message] = []
    held: list[Message] = []
    awaited: set[str] = set()
    for msg in messages:
        if msg.role == "system":
            (held if awaited else out).append(msg)
            continue
        results = {p.tool_call_id for p in msg.content if isinstance(p, ToolResultPart)}
        if msg.role != "user" or not results & awaited:
            out.extend(held)
            held.clear()
            awaited.clear()
        awaited -= results
        if held and not awaited:
            # Right after the results: the turn's own text, if any, came after the system turn.
            out.append(Message("user", [p for p in msg.content if isinstance(p, ToolResultPart)]))
            out.extend(held)
            held.clear()
            msg = Message("user", [p for p in msg.content if not isinstance(p, ToolResultPart)])
        out.append(msg)
        if msg.role == "assistant":
            awaited = {p.id for p in msg.content if isinstance(p, ToolCallPart)}
    return out


_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def response_id(source_id: str | None, request_id: str, prefix: str) -> str:
    """Keep the id the source gave; otherwise derive one from the gateway's request id, for tracing."""
    if source_id:
        return source_id
    return prefix + request_id.removeprefix("req_") if request_id else new_id(prefix)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def parse_arguments(arguments: str) -> dict:
    """Tool-call arguments as an object; a model's broken JSON becomes {} rather than a failed turn."""
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        log.debug("tool call arguments are not valid JSON; sending {}: %r", arguments[:200])
        return {}
    return value if isinstance(value, dict) else {}


def parse_data_url(url: str) -> tuple[str, str] | None:
    """(media_type, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    return header.removesuffix(";base64") or "application/octet-stream", data


class RendererState:
    """What every stream renderer keeps: the answer's id (the source's, if it gives one before the
    stream begins), whether it began, ended or failed, and the usage so far."""

    def __init__(self, model: str, request_id: str, id_prefix: str) -> None:
        self.model = model
        self.request_id = request_id
        self._id = response_id(None, request_id, id_prefix)
        self._usage = Usage()
        self._started = False
        self._finished = False
        self._failed = False

    def _take_start(self, event: Start) -> None:
        if event.id and not self._started:
            self._id = event.id
        merge_usage(self._usage, Usage(event.input_tokens, None, event.cache_read_tokens, event.cache_write_tokens))
