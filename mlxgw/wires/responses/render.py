"""The Response object and its output items, as the whole answer and the stream's snapshots both
write them."""

from __future__ import annotations

import time
from typing import Any

from mlxgw.canonical import FinishReason, ThinkingPart, ToolKind, Usage
from mlxgw.errors import GatewayError
from mlxgw.wires.common import parse_arguments
from mlxgw.wires.openai.stream import error_object

# Anthropic's opaque thinking state rides in `encrypted_content` behind these markers, so that it
# goes back to Anthropic on the client's next turn (and is told apart from OpenAI's own).
ANTHROPIC_SIGNATURE = "mlxgw.anthropic.signature:"
ANTHROPIC_REDACTED = "mlxgw.anthropic.redacted:"

# The tool a client's own tool search is offered as; its calls go back as `tool_search_call` items.
TOOL_SEARCH = "tool_search"

# Finish reasons that leave a Response `incomplete`, with the reason OpenAI gives.
INCOMPLETE: dict[str, str] = {"max_tokens": "max_output_tokens", "refusal": "content_filter"}


def status_for(reason: FinishReason) -> str:
    return "incomplete" if reason in INCOMPLETE else "completed"


def summarised(echo: dict | None) -> bool:
    """Whether reasoning is written as a summary (the client asked for one: Codex does) rather than
    as raw reasoning text."""
    reasoning = (echo or {}).get("reasoning")
    return isinstance(reasoning, dict) and reasoning.get("summary") is not None


def searches_tools(echo: dict | None) -> bool:
    """Whether the client runs a tool search itself (Codex), which the model may call."""
    tools = (echo or {}).get("tools")
    return isinstance(tools, list) and any(
        isinstance(t, dict) and t.get("type") == TOOL_SEARCH and t.get("execution") == "client" for t in tools
    )


def encrypted_content(part: ThinkingPart) -> str | None:
    if part.redacted is not None:
        return ANTHROPIC_REDACTED + part.redacted
    if part.signature:
        return ANTHROPIC_SIGNATURE + part.signature
    return part.encrypted


def message_item(item_id: str, text: str | None, status: str) -> dict:
    content = [] if text is None else [output_text(text)]
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def output_text(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(item_id: str, text: str | None, summary: bool, encrypted: str | None, status: str) -> dict:
    """`text` None: the item as it opens, before any of its text."""
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "status": status, "summary": []}
    if summary and text:
        item["summary"] = [{"type": "summary_text", "text": text}]
    elif not summary:
        item["content"] = [{"type": "reasoning_text", "text": text}] if text else []
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return item


def call_item(
    item_id: str, call_id: str, name: str, arguments: str, kind: ToolKind, namespace: str | None, status: str
) -> dict:
    if kind == "custom":
        item = {"id": item_id, "type": "custom_tool_call", "status": status, "call_id": call_id, "name": name, "input": arguments}
    else:
        item = {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments}
    if namespace is not None:
        item["namespace"] = namespace
    return item


def tool_search_item(item_id: str, call_id: str, arguments: str, status: str) -> dict:
    return {
        "id": item_id,
        "type": "tool_search_call",
        "status": status,
        "call_id": call_id,
        "execution": "client",
        "arguments": parse_arguments(arguments),
    }


def usage_object(usage: Usage) -> dict:
    """OpenAI counts the cached part inside `input_tokens`; canonical `input_tokens` excludes it."""
    cached = usage.cache_read_tokens or 0
    prompt = (usage.input_tokens or 0) + cached + (usage.cache_write_tokens or 0)
    output = usage.output_tokens or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        # Not known apart from the output tokens on any backend mlxgw translates for.
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output,
    }


def failure(err: GatewayError) -> dict:
    """The `error` of a failed Response: OpenAI's codes, or the finer one the upstream gave (Codex
    reads `context_length_exceeded`)."""
    code = err.code or {"rate_limit": "rate_limit_exceeded", "invalid_request": "invalid_prompt"}.get(err.kind, "server_error")
    return {"code": code, "message": err.message, **{k: v for k, v in error_object(err).items() if k in ("type", "param")}}


def response_object(
    response_id: str,
    created_at: int,
    model: str,
    echo: dict | None,
    status: str,
    output: list[dict],
    usage: Usage | None,
    *,
    incomplete: str | None = None,
    error: dict | None = None,
) -> dict:
    """A Response. `echo` is the client's request body, whose settings every Response repeats."""
    raw = echo or {}
    reasoning = raw.get("reasoning") if isinstance(raw.get("reasoning"), dict) else {}
    text = raw.get("text") if isinstance(raw.get("text"), dict) else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "completed_at": int(time.time()) if status == "completed" else None,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": raw.get("instructions"),
        "max_output_tokens": raw.get("max_output_tokens"),
        "max_tool_calls": raw.get("max_tool_calls"),
        "model": model,
        "output": output,
        "parallel_tool_calls": raw.get("parallel_tool_calls", True),
        "previous_response_id": raw.get("previous_response_id"),
        "prompt_cache_key": raw.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": raw.get("safety_identifier"),
        "service_tier": "default",
        "store": raw.get("store", True),
        "temperature": raw.get("temperature"),
        "text": {**text, "format": text.get("format") or {"type": "text"}},
        "tool_choice": raw.get("tool_choice", "auto"),
        "tools": raw.get("tools") or [],
        "top_p": raw.get("top_p"),
        "truncation": raw.get("truncation", "disabled"),
        "usage": usage_object(usage) if usage is not None else None,
        "user": raw.get("user"),
        "metadata": raw.get("metadata") or {},
    }
