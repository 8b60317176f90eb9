"""Anthropic Messages (`POST /v1/messages`) ↔ the canonical model.

Parsing is lenient on purpose: real clients (Claude Code first) send fields and block types that
have no canonical form; those are dropped with a debug log, never rejected. A field the gateway
does read must have the right type, or the request is a 400 naming it. The client's own body stays
in `ChatRequest.raw` for native passthrough.

Thinking budgets: `{"type": "enabled", "budget_tokens": N}` gives N; `{"type": "adaptive"}` gives a
budget from `output_config.effort` (low 1024, medium 4096, high 16384, max 32768; high when absent,
as the API defaults to high effort).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlxgw.canonical import (
    ChatRequest,
    ChatResponse,
    Event,
    Finish,
    ImagePart,
    Message,
    Part,
    RedactedThinking,
    ResponseFormat,
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
from mlxgw.errors import GatewayError, UnreadableUpstream, UpstreamError

from .anthropic_stream import (
    ERROR_TYPES,
    StreamParser,
    StreamRenderer,
    error_object,
    usage_from_anthropic,
    usage_to_anthropic,
)
from .common import (
    FINISH_FROM_ANTHROPIC,
    cannot,
    capped,
    dumps,
    error_body_json,
    error_message,
    invalid,
    is_int,
    log,
    lower_headers,
    merge_turns,
    new_id,
    opt_bool,
    opt_int,
    opt_number,
    opt_object,
    opt_str,
    parse_arguments,
    require_messages,
    require_model,
    require_object,
    response_id,
    str_list,
    stream_error,
    upstream_error,
)
from .json_schema import for_anthropic
from .upstream_fields import typed_field

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "EFFORT_BUDGETS",
    "ERROR_TYPES",
    "FORWARDED_HEADERS",
    "StreamParser",
    "StreamRenderer",
    "build_request",
    "passthrough_body",
    "error_from_upstream",
    "events_from_response",
    "parse_count_tokens_request",
    "parse_request",
    "render_error",
    "render_response",
]

DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024
EFFORT_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384, "max": 32768}
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
JSON_OBJECT_INSTRUCTION = (
    "Answer with one JSON object and nothing else: no text before or after it, no Markdown code fence."
)
_TOOL_CHOICE_MODES = ("auto", "any", "none", "tool")
_TOOL_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_CONTEXT_TOO_LONG = re.compile(r"prompt is too long|context window|context length", re.IGNORECASE)


# ---- server side: a client's request -----------------------------------------------------------


def parse_request(body: Any, headers: Mapping[str, str]) -> ChatRequest:
    return _parse(body, headers, needs_max_tokens=True)


def parse_count_tokens_request(body: Any, headers: Mapping[str, str]) -> ChatRequest:
    """`/v1/messages/count_tokens` takes the same body without `max_tokens`."""
    return _parse(body, headers, needs_max_tokens=False)


def _parse(body: Any, headers: Mapping[str, str], *, needs_max_tokens: bool) -> ChatRequest:
    body = require_object(body)
    model = require_model(body)
    raw_messages = require_messages(body)
    max_tokens = opt_int(body, "max_tokens", positive=True)
    if max_tokens is None and needs_max_tokens:
        raise invalid("`max_tokens` is required", "max_tokens")
    system = _system(body.get("system"))
    messages: list[Message] = []
    for i, msg in enumerate(raw_messages):
        param = f"messages.{i}"
        if not isinstance(msg, dict):
            raise invalid(f"`{param}` must be an object", param)
        role = msg.get("role")
        if role not in ("user", "assistant", "system"):
            raise invalid(f"`{param}.role` must be user or assistant", f"{param}.role")
        if msg.get("content") is None:
            raise invalid(f"`{param}.content` is required", f"{param}.content")
        parts = _blocks(msg["content"], f"{param}.content")
        if role == "system":
            system.extend(p for p in parts if isinstance(p, TextPart))
        else:
            messages.append(Message(role, parts))
    metadata = opt_object(body, "metadata") or {}
    output_config = opt_object(body, "output_config") or {}
    low = lower_headers(headers)
    return ChatRequest(
        model=model,
        messages=merge_turns(messages),
        system=system,
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        max_tokens=max_tokens,
        temperature=opt_number(body, "temperature", 0, 1),
        top_p=opt_number(body, "top_p", 0, 1),
        top_k=opt_int(body, "top_k"),
        stop=str_list(body.get("stop_sequences"), "stop_sequences"),
        stream=bool(opt_bool(body, "stream")),
        thinking_budget=_thinking_budget(body, opt_str(output_config, "effort", "output_config.effort")),
        user=opt_str(metadata, "user_id", "metadata.user_id"),
        response_format=_response_format(body, output_config),
        protocol="anthropic",
        raw=body,
        client_headers={k: low[k] for k in FORWARDED_HEADERS if k in low},
    )


def _system(value: Any) -> list[TextPart]:
    if value is None:
        return []
    if isinstance(value, str):
        return [TextPart(value)] if value else []
    if not isinstance(value, list):
        raise invalid("`system` must be a string or an array of text blocks", "system")
    return [p for p in _blocks(value, "system") if isinstance(p, TextPart)]


def _blocks(content: Any, param: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise invalid(f"`{param}` must be a string or an array of content blocks", param)
    parts: list[Part] = []
    for j, block in enumerate(content):
        where = f"{param}.{j}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise invalid(f"`{where}` must be an object with a `type`", where)
        parts.extend(_block(block, where))
    return parts


def _block(block: dict, where: str) -> list[Part]:
    kind = block["type"]
    if kind == "text":
        return [TextPart(_str(block, "text", where), block.get("cache_control"))]
    if kind == "image":
        image = _image(block.get("source"), where)
        return [image] if image else _dropped(block, where)
    if kind == "tool_use":
        tool_input = block.get("input", {})
        if not isinstance(tool_input, dict):
            raise invalid(f"`{where}.input` must be an object", f"{where}.input")
        return [ToolCallPart(_str(block, "id", where), _str(block, "name", where), dumps(tool_input))]
    if kind == "tool_result":
        content = block.get("content")
        nested = [] if content is None else _blocks(content, f"{where}.content")
        kept = [p for p in nested if isinstance(p, TextPart | ImagePart)]
        is_error = opt_bool(block, "is_error", f"{where}.is_error") is True
        return [ToolResultPart(_str(block, "tool_use_id", where), kept, is_error)]  # type: ignore[arg-type]
    if kind == "thinking":
        signature = opt_str(block, "signature", f"{where}.signature")
        return [ThinkingPart(_str(block, "thinking", where), signature or None)]
    if kind == "redacted_thinking":
        return [ThinkingPart(redacted=_str(block, "data", where))]
    if kind == "document":
        return _document(block, where)
    return _dropped(block, where)


def _str(block: dict, key: str, where: str) -> str:
    value = block.get(key)
    if not isinstance(value, str):
        raise invalid(f"`{where}.{key}` must be a string", f"{where}.{key}")
    return value


def _dropped(block: dict, where: str) -> list[Part]:
    log.debug("dropping unsupported %s block at %s", block.get("type"), where)
    return []


def _image(source: Any, where: str) -> ImagePart | None:
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        media_type = opt_str(source, "media_type", f"{where}.source.media_type")
        return ImagePart(media_type=media_type, data=source["data"])
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return ImagePart(url=source["url"])
    return None


def _document(block: dict, where: str) -> list[Part]:
    """Plain-text documents keep their text; PDFs and files have no canonical form."""
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str):
        return [TextPart(source["data"])]
    if isinstance(source, dict) and source.get("type") == "content" and source.get("content") is not None:
        return [p for p in _blocks(source["content"], f"{where}.source.content") if isinstance(p, TextPart)]
    return _dropped(block, where)


def _tools(value: Any) -> list[Tool]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("`tools` must be an array", "tools")
    tools = []
    for j, tool in enumerate(value):
        where = f"tools.{j}"
        if not isinstance(tool, dict):
            raise invalid(f"`{where}` must be an object", where)
        if tool.get("type") not in (None, "custom"):
            log.debug("dropping server tool %r of type %r", tool.get("name"), tool.get("type"))
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise invalid(f"`{where}.name` must be a non-empty string", f"{where}.name")
        schema = tool.get("input_schema")
        if schema is not None and not isinstance(schema, dict):
            raise invalid(f"`{where}.input_schema` must be an object", f"{where}.input_schema")
        description = opt_str(tool, "description", f"{where}.description")
        tools.append(Tool(name, description, schema or {"type": "object", "properties": {}}))
    return tools


def _tool_choice(value: Any) -> ToolChoice | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in _TOOL_CHOICE_MODES:
        raise invalid("`tool_choice.type` must be one of auto, any, none, tool", "tool_choice")
    name = value.get("name")
    if value["type"] == "tool" and not isinstance(name, str):
        raise invalid("`tool_choice.name` is required with type tool", "tool_choice.name")
    return ToolChoice(
        value["type"],
        name if value["type"] == "tool" else None,
        opt_bool(value, "disable_parallel_tool_use", "tool_choice.disable_parallel_tool_use") is True,
    )


def _thinking_budget(body: dict, effort: str | None) -> int | None:
    thinking = opt_object(body, "thinking")
    if thinking is None:
        return None
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not is_int(budget) or budget < 1:
            raise invalid("`thinking.budget_tokens` must be a positive integer", "thinking.budget_tokens")
        return budget
    if thinking.get("type") == "adaptive":
        # An effort level newer than this table still passes through: it gets the default's budget.
        return EFFORT_BUDGETS.get(effort or "high", EFFORT_BUDGETS["high"])
    return None


def _response_format(body: dict, output_config: dict) -> ResponseFormat | None:
    """Structured outputs: `output_config.format`, or the deprecated top-level `output_format`."""
    param = "output_config.format"
    fmt = opt_object(output_config, "format", param)
    if fmt is None:
        param = "output_format"
        fmt = opt_object(body, "output_format", param)
    if fmt is None:
        return None
    if fmt.get("type") != "json_schema":
        raise invalid(f"`{param}.type` must be json_schema", f"{param}.type")
    schema = opt_object(fmt, "schema", f"{param}.schema")
    if schema is None:
        raise invalid(f"`{param}.schema` is required", f"{param}.schema")
    return ResponseFormat("json_schema", param, schema=schema)


# ---- client side: a request for an Anthropic upstream ------------------------------------------


def passthrough_body(raw: dict, model: str, *, ceiling: int | None = None) -> dict:
    """A client's own body for an Anthropic upstream: `model` replaced, all else kept as sent, except
    `role: "system"` turns (Claude Code sends them; the API refuses them), which join `system`, and
    `max_tokens` above `ceiling`, which is lowered to it (with a thinking budget kept below it)."""
    body = {**raw, "model": model}
    if ceiling is not None:
        _fit_ceiling(body, ceiling)
    messages = raw.get("messages") or []
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
    if req.logprobs or req.top_logprobs:
        param = "logprobs" if req.logprobs else "top_logprobs"
        raise cannot(param, "Anthropic models do not return log probabilities; leave it out, or map this model to an OpenAI backend")
    max_tokens = capped(req.max_tokens or DEFAULT_MAX_TOKENS, ceiling)
    sendable = [Message(m.role, [p for p in m.content if _sendable(p)]) for m in req.messages]
    messages = [
        {"role": m.role, "content": [_block_json(p) for p in m.content]} for m in merge_turns(sendable)
    ]
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
    system = [_text_json(p) for p in req.system if p.text]
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
        return bool(part.signature or part.redacted)  # and unsigned thinking
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


# ---- client side: an Anthropic upstream's answer -----------------------------------------------


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


# ---- server side: our answer -------------------------------------------------------------------


def render_response(resp: ChatResponse, model: str, request_id: str) -> dict:
    content: list[dict] = []
    for part in resp.content:
        if isinstance(part, TextPart) and part.text:
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ThinkingPart) and part.redacted is not None:
            content.append({"type": "redacted_thinking", "data": part.redacted})
        elif isinstance(part, ThinkingPart):
            content.append({"type": "thinking", "thinking": part.text, "signature": part.signature or ""})
        elif isinstance(part, ToolCallPart):
            call_id = part.id or new_id("toolu_")
            content.append(
                {
                    "type": "tool_use",
                    "id": call_id,
                    "name": part.name,
                    "input": parse_arguments(part.arguments),
                }
            )
    return {
        "id": response_id(resp.id, request_id, "msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": resp.finish.reason,
        "stop_sequence": resp.finish.stop_sequence,
        "usage": usage_to_anthropic(resp.usage),
    }


def render_error(err: GatewayError, request_id: str) -> tuple[int, dict]:
    return err.status, {"type": "error", "error": error_object(err), "request_id": request_id}


def error_from_upstream(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    error = error_body_json(body).get("error")
    message = error_message(status, body, error)
    code = "context_length_exceeded" if _CONTEXT_TOO_LONG.search(message) else None
    return upstream_error(status, message, code=code, body=body, headers=headers)
