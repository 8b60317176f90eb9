"""Anthropic Messages, the upstream's face: a canonical request as the body Anthropic takes, and its
answers and errors back into canonical events."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlxgw.canonical import (
    ChatRequest,
    Event,
    Finish,
    ImagePart,
    Message,
    Part,
    RedactedThinking,
    Start,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ThinkingSignature,
    Tool,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
)
from mlxgw.errors import (
    UnreadableUpstream,
    UpstreamError,
)
from mlxgw.wires.anthropic.foreign_thinking import without_foreign_thinking
from mlxgw.wires.anthropic.usage import usage_from_anthropic
from mlxgw.wires.common import (
    FINISH_FROM_ANTHROPIC,
    dumps,
    merge_turns,
    new_id,
    parse_arguments,
)
from mlxgw.wires.error_map import (
    error_body_json,
    error_message,
    stream_error,
    upstream_error,
)
from mlxgw.wires.fields import (
    cannot,
    capped,
    is_int,
)
from mlxgw.wires.json_schema import for_anthropic
from mlxgw.wires.tool_names import flattened
from mlxgw.wires.upstream_fields import typed_field

DEFAULT_MAX_TOKENS = 4096


MIN_THINKING_BUDGET = 1024




JSON_OBJECT_INSTRUCTION = (
    "Answer with one JSON object and nothing else: no text before or after it, no Markdown code fence."
)


_TOOL_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


_CONTEXT_TOO_LONG = re.compile(r"prompt is too long|context window|context length", re.IGNORECASE)


def passthrough_body(raw: dict, model: str, *, ceiling: int | None = None) -> dict:
    """A client's own body for an Anthropic upstream: `model` replaced, all else kept as sent, except
    `role: "system"` turns (Claude Code sends them; the API refuses them), which join `system`, and
    `max_tokens` above `ceiling`, which is lowered to it (with a thinking budget kept below it), and
    thinking blocks Anthropic did not mint, which it would refuse (see `foreign_thinking`)."""
    body = without_foreign_thinking({**raw, "model": model})
    if ceiling is not None:
        _fit_ceiling(body, ceiling)
    messages = body.get("messages") or []
    if not any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
        return body
    system = raw.get("system")
    blocks: list = [{"type": "text", "text": system}] if isinstance(system, str) and system else list(system or [])
    kept = []
    for msg in messages:
        if msg.get("role") != "system":
            kept.append(msg)
            continue
        content = msg.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        blocks.extend(b for b in content if b.get("type") == "text" and b.get("text"))
    body["messages"] = kept
    body["system"] = blocks
    return body


def _fit_ceiling(body: dict, ceiling: int) -> None:
    body["max_tokens"] = capped(body.get("max_tokens"), ceiling)
    thinking = body.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if is_int(budget) and budget >= body["max_tokens"]:
        # Anthropic wants the budget below max_tokens and at least its minimum: shrink it, or, with
        # no room left for one, answer without thinking rather than fail.
        if body["max_tokens"] - 1 >= MIN_THINKING_BUDGET:
            body["thinking"] = {**thinking, "budget_tokens": body["max_tokens"] - 1}
        else:
            del body["thinking"]


def build_request(req: ChatRequest, model: str, *, ceiling: int | None = None) -> dict:
    req = flattened(req)
    if req.logprobs or req.top_logprobs:
        param = "logprobs" if req.logprobs else "top_logprobs"
        raise cannot(param, "Anthropic models do not return log probabilities; leave it out, or map this model to an OpenAI backend")
    max_tokens = capped(req.max_tokens or DEFAULT_MAX_TOKENS, ceiling)
    sendable = [
        Message(m.role, [p for p in m.content if _sendable(p)]) for m in req.messages if m.role != "system"
    ]
    messages = [
        {"role": m.role, "content": [_block_json(p) for p in m.content]} for m in merge_turns(sendable)
    ]
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
    # The Messages API takes no system turns in `messages`: those kept in place join `system`, in order.
    late = [p for m in req.messages if m.role == "system" for p in m.content if isinstance(p, TextPart)]
    system = [_text_json(p) for p in [*req.system, *late] if p.text]
    fmt = req.response_format
    if fmt and fmt.type == "json_schema" and fmt.schema is not None:
        body["output_config"] = {"format": {"type": "json_schema", "schema": for_anthropic(fmt.schema)}}
    elif fmt:
        # Structured outputs need a schema and take only closed objects, so "any JSON object" has
        # no constrained form there: the instruction is what JSON mode amounts to.
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
    if system:
        body["system"] = system
    if req.tools:
        body["tools"] = [_tool_json(tool) for tool in req.tools]
        if req.tool_choice:
            body["tool_choice"] = _tool_choice_json(req.tool_choice)
    thinking = _thinking_json(req, max_tokens, messages)
    if thinking:
        # With thinking on, Anthropic accepts no temperature but 1, no top_k, and top_p of 0.95 or more.
        body["thinking"] = thinking
        if req.top_p is not None and req.top_p >= 0.95:
            body["top_p"] = req.top_p
    else:
        sampling = {
            "temperature": None if req.temperature is None else min(max(req.temperature, 0.0), 1.0),
            "top_p": req.top_p,
            "top_k": req.top_k,
        }
        body.update({k: v for k, v in sampling.items() if v is not None})
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.stream:
        body["stream"] = True
    return body


def _sendable(part: Part) -> bool:
    if isinstance(part, TextPart):
        return bool(part.text)  # Anthropic rejects empty text blocks
    if isinstance(part, ThinkingPart):
        # Only state Anthropic minted goes back to it: unsigned thinking, or another provider's, is refused.
        return part.origin == "anthropic" and bool(part.signature or part.redacted)
    return True


def _text_json(part: TextPart) -> dict:
    block: dict[str, Any] = {"type": "text", "text": part.text}
    if part.cache_control:
        block["cache_control"] = part.cache_control
    return block


def _image_json(part: ImagePart) -> dict:
    if part.url:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    return {"type": "image", "source": {"type": "base64", "media_type": part.media_type, "data": part.data}}


def _tool_id(call_id: str) -> str:
    """Anthropic accepts only [a-zA-Z0-9_-] in tool ids; other servers' ids may carry more."""
    return _TOOL_ID_UNSAFE.sub("_", call_id)


def _block_json(part: Part) -> dict:
    if isinstance(part, TextPart):
        return _text_json(part)
    if isinstance(part, ImagePart):
        return _image_json(part)
    if isinstance(part, ToolCallPart):
        return {
            "type": "tool_use",
            "id": _tool_id(part.id),
            "name": part.name,
            "input": parse_arguments(part.arguments),
        }
    if isinstance(part, ToolResultPart):
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_id(part.tool_call_id)}
        content = [
            _text_json(p) if isinstance(p, TextPart) else _image_json(p) for p in part.content if _sendable(p)
        ]
        if content:
            block["content"] = content
        if part.is_error:
            block["is_error"] = True
        return block
    if part.redacted:
        return {"type": "redacted_thinking", "data": part.redacted}
    return {"type": "thinking", "thinking": part.text, "signature": part.signature}


def _tool_json(tool: Tool) -> dict:
    out: dict[str, Any] = {"name": tool.name, "input_schema": tool.input_schema}
    if tool.description:
        out["description"] = tool.description
    return out


def _tool_choice_json(choice: ToolChoice) -> dict:
    out: dict[str, Any] = {"type": choice.mode}
    if choice.mode == "tool":
        out["name"] = choice.name
    if choice.disable_parallel and choice.mode != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _thinking_json(req: ChatRequest, max_tokens: int, messages: list[dict]) -> dict | None:
    budget = req.thinking_budget
    if budget is None or not MIN_THINKING_BUDGET <= budget < max_tokens:
        return None
    if req.tool_choice and req.tool_choice.mode in ("any", "tool"):
        return None  # Anthropic refuses thinking when a tool call is forced
    # With thinking on, an assistant turn with tool calls must open with a (signed) thinking block;
    # history from an OpenAI client has none, so thinking is left off rather than failing the turn.
    last = next((m for m in reversed(messages) if m["role"] == "assistant"), None)
    calls_tools = last is not None and any(b["type"] == "tool_use" for b in last["content"])
    if calls_tools and last["content"][0]["type"] not in ("thinking", "redacted_thinking"):
        return None
    return {"type": "enabled", "budget_tokens": budget}


def events_from_response(body: dict) -> list[Event]:
    if isinstance(body, dict) and body.get("type") == "error":
        raise stream_error(body.get("error"), dumps(body))
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, list):
        raise UnreadableUpstream("upstream sent a message without a `content` array")
    usage = usage_from_anthropic(body.get("usage"))
    events: list[Event] = [
        Start(
            typed_field(body, "id", str),
            typed_field(body, "model", str),
            usage.input_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
        )
    ]
    tools = 0
    for i, block in enumerate(content):
        where = f"content[{i}]."
        if not isinstance(block, dict):
            raise UnreadableUpstream("upstream sent a content block that is not an object")
        kind = typed_field(block, "type", str, where)
        if kind == "text" and (text := typed_field(block, "text", str, where)):
            events.append(TextDelta(text))
        elif kind == "thinking":
            if thinking := typed_field(block, "thinking", str, where):
                events.append(ThinkingDelta(thinking))
            if signature := typed_field(block, "signature", str, where):
                events.append(ThinkingSignature(signature))
        elif kind == "redacted_thinking":
            events.append(RedactedThinking(typed_field(block, "data", str, where) or ""))
        elif kind == "tool_use":
            tool_input = typed_field(block, "input", dict, where) or {}
            call_id, name = typed_field(block, "id", str, where), typed_field(block, "name", str, where)
            events.append(ToolCallStart(tools, call_id or new_id("toolu_"), name or ""))
            events.append(ToolCallDelta(tools, dumps(tool_input)))
            events.append(ToolCallEnd(tools))
            tools += 1
    events.append(usage)
    reason = FINISH_FROM_ANTHROPIC.get(typed_field(body, "stop_reason", str) or "", "end_turn")
    events.append(Finish(reason, typed_field(body, "stop_sequence", str)))
    return events


def error_from_upstream(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    error = error_body_json(body).get("error")
    message = error_message(status, body, error)
    code = "context_length_exceeded" if _CONTEXT_TOO_LONG.search(message) else None
    return upstream_error(status, message, code=code, body=body, headers=headers)
