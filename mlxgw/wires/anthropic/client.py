"""Anthropic Messages, the client's face: a request to `POST /v1/messages` into the canonical model,
and canonical answers and errors back into Messages JSON.

Parsing is lenient on purpose: real clients (Claude Code first) send fields and block types that
have no canonical form; those are dropped with a debug log, never rejected. A field the gateway
does read must have the right type, or the request is a 400 naming it. The client's own body stays
in `ChatRequest.raw` for native passthrough.

Thinking budgets: `{"type": "enabled", "budget_tokens": N}` gives N; `{"type": "adaptive"}` gives
the budget of `output_config.effort` (the table in `wires.effort`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlxgw.canonical import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from mlxgw.errors import (
    GatewayError,
)
from mlxgw.wires.anthropic.openai_state import signature_for, unsealed
from mlxgw.wires.anthropic.usage import error_object, usage_to_anthropic
from mlxgw.wires.common import (
    dumps,
    log,
    lower_headers,
    merge_turns,
    new_id,
    parse_arguments,
    response_id,
)
from mlxgw.wires.effort import anthropic_budget
from mlxgw.wires.fields import (
    invalid,
    is_int,
    opt_bool,
    opt_int,
    opt_number,
    opt_object,
    opt_str,
    require_messages,
    require_model,
    require_object,
    str_list,
)
from mlxgw.wires.thinking_signature import is_ours

# Client headers an Anthropic upstream is sent in passthrough.
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
_TOOL_CHOICE_MODES = ("auto", "any", "none", "tool")


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
        if role == "system" and not messages:
            system.extend(p for p in parts if isinstance(p, TextPart))
        elif role == "system":
            # Kept in place, so that a note Claude Code adds later does not rewrite the prompt's head.
            messages.append(Message("system", [p for p in parts if isinstance(p, TextPart) and p.text]))
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
        text = _str(block, "thinking", where)
        if openai_state := unsealed(signature):
            encrypted, item_id = openai_state
            return [ThinkingPart(text, encrypted=encrypted, origin="openai", item_id=item_id)]
        if is_ours(signature, text):
            return [ThinkingPart(text, origin="mlxgw")]
        return [ThinkingPart(text, signature or None, origin="anthropic" if signature else None)]
    if kind == "redacted_thinking":
        return [ThinkingPart(redacted=_str(block, "data", where), origin="anthropic")]
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
        strict = opt_bool(tool, "strict", f"{where}.strict") is True
        tools.append(Tool(name, description, schema or {"type": "object", "properties": {}}, strict=strict))
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
        return anthropic_budget(effort)
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


def render_response(resp: ChatResponse, model: str, request_id: str) -> dict:
    content: list[dict] = []
    for part in resp.content:
        if isinstance(part, TextPart) and part.text:
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ThinkingPart) and part.redacted is not None:
            content.append({"type": "redacted_thinking", "data": part.redacted})
        elif isinstance(part, ThinkingPart):
            content.append({"type": "thinking", "thinking": part.text, "signature": signature_for(part)})
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
