"""OpenAI Chat Completions, the upstream's face: a canonical request as the body an OpenAI-compatible
server takes, and its answers and errors back into canonical events.

The reasoning text of earlier turns is never sent (OpenAI does not take it back). A thinking budget
the client asked for outright goes as `reasoning_effort` (the table in `wires.effort`); Anthropic's
`adaptive` does not, as models without reasoning refuse the field."""

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
    ResponseFormat,
    Start,
    TextDelta,
    TextPart,
    ThinkingDelta,
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
from mlxgw.wires.common import (
    dumps,
    new_id,
)
from mlxgw.wires.effort import demands_reasoning, openai_level
from mlxgw.wires.error_map import (
    error_body_json,
    error_message,
    stream_error,
    upstream_error,
)
from mlxgw.wires.fields import (
    capped,
)
from mlxgw.wires.json_schema import strict_for_openai
from mlxgw.wires.openai.stream import (
    finish_from_openai,
    usage_from_openai,
)
from mlxgw.wires.tool_names import flattened
from mlxgw.wires.upstream_fields import typed, typed_field
from mlxgw.wires.volatile import steady

SCHEMA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # OpenAI's rule for json_schema names
TOKEN_FIELDS = ("max_completion_tokens", "max_tokens")


_CONTEXT_TOO_LONG = re.compile(
    r"maximum context length|context[_ ]length[_ ]exceeded|exceeds the (?:available context|context window)|prompt is too long",
    re.IGNORECASE,
)


def passthrough_body(raw: dict, model: str, *, ceiling: int | None = None, token_field: str = "max_tokens") -> dict:
    """A client's own body for an OpenAI upstream: every field as sent but `model`, and the output
    limit, lowered to `ceiling` in whichever field the client used (`token_field` if it used none)."""
    body = {**raw, "model": model}
    if ceiling is not None:
        for name in [f for f in TOKEN_FIELDS if raw.get(f) is not None] or [token_field]:
            body[name] = capped(raw.get(name), ceiling)
    return body


def build_request(
    req: ChatRequest, model: str, *, ceiling: int | None = None, token_field: str = "max_tokens"
) -> dict:
    """`token_field` names the output limit: `max_completion_tokens` for OpenAI itself (its reasoning
    models refuse `max_tokens`), `max_tokens` for the servers that know no other."""
    req = steady(flattened(req))
    messages: list[dict] = []
    if req.system:
        messages.append({"role": "system", "content": "\n\n".join(p.text for p in req.system)})
    for msg in req.messages:
        if msg.role == "system":
            text = "\n\n".join(p.text for p in msg.content if isinstance(p, TextPart))
            messages.append({"role": "system", "content": text})  # in place, as the client sent it
        else:
            messages.extend(_user_messages(msg) if msg.role == "user" else [_assistant_message(msg)])
    body: dict[str, Any] = {"model": model, "messages": messages}
    if req.tools:
        body["tools"] = [_tool_json(tool) for tool in req.tools]
        if req.tool_choice:
            body["tool_choice"] = _tool_choice_json(req.tool_choice)
            if req.tool_choice.disable_parallel:
                body["parallel_tool_calls"] = False
    optional = {
        token_field: capped(req.max_tokens, ceiling),
        "temperature": req.temperature,
        "top_p": req.top_p,
        "seed": req.seed,
        "user": req.user,
        "stop": req.stop or None,
        "response_format": _response_format_json(req.response_format),
        "logprobs": req.logprobs or None,
        "top_logprobs": req.top_logprobs,
        "reasoning_effort": openai_level(req.thinking_budget) if demands_reasoning(req) else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _response_format_json(fmt: ResponseFormat | None) -> dict | None:
    if fmt is None:
        return None
    if fmt.type == "json_object" or fmt.schema is None:
        return {"type": "json_object"}
    name = fmt.name or fmt.schema.get("title")
    spec: dict[str, Any] = {
        "name": name if isinstance(name, str) and SCHEMA_NAME.fullmatch(name) else "response",
        "schema": fmt.schema,
        "strict": strict_for_openai(fmt.schema),
    }
    if fmt.description:
        spec["description"] = fmt.description
    return {"type": "json_schema", "json_schema": spec}


def _user_messages(msg: Message) -> list[dict]:
    """Tool results become `tool` messages, which must directly follow the assistant's tool calls."""
    out: list[dict] = []
    parts: list[dict] = []
    for part in msg.content:
        if isinstance(part, ToolResultPart):
            out.append(
                {"role": "tool", "tool_call_id": part.tool_call_id, "content": _tool_result_text(part)}
            )
        elif isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            url = part.url or f"data:{part.media_type};base64,{part.data}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _tool_result_text(part: ToolResultPart) -> str:
    pieces = [p.text if isinstance(p, TextPart) else "[image omitted]" for p in part.content]
    text = "\n".join(pieces)
    return f"Error: {text}" if part.is_error else text


def _assistant_message(msg: Message) -> dict:
    texts = [p.text for p in msg.content if isinstance(p, TextPart)]
    calls = [
        {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments or "{}"}}
        for p in msg.content
        if isinstance(p, ToolCallPart)
    ]
    out: dict[str, Any] = {"role": "assistant"}
    if texts or not calls:
        out["content"] = "\n\n".join(texts)
    if calls:
        out["tool_calls"] = calls
    return out


def _tool_json(tool: Tool) -> dict:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tool_choice_json(choice: ToolChoice) -> Any:
    if choice.mode == "tool" and choice.name:
        return {"type": "function", "function": {"name": choice.name}}
    return {"any": "required", "none": "none"}.get(choice.mode, "auto")


def events_from_response(body: dict) -> list[Event]:
    if isinstance(body, dict) and "error" in body:
        raise stream_error(body["error"], dumps(body))
    choices = body.get("choices") if isinstance(body, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise UnreadableUpstream("upstream sent a chat completion without choices[0].message")
    usage = usage_from_openai(body.get("usage"))
    events: list[Event] = [
        Start(
            id=typed_field(body, "id", str),
            model=typed_field(body, "model", str),
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cache_read_tokens,
        )
    ]
    where = "choices[0].message."
    reasoning = typed_field(message, "reasoning_content", str, where) or typed_field(message, "reasoning", str, where)
    if reasoning:
        events.append(ThinkingDelta(reasoning))
    if content := typed_field(message, "content", str, where):
        events.append(TextDelta(content))
    calls = typed_field(message, "tool_calls", list, where) or []
    for index, call in enumerate(calls):
        at = f"{where}tool_calls[{index}]"
        function = typed_field(typed(call, dict, at) or {}, "function", dict, at + ".")
        if function is None:
            raise UnreadableUpstream("upstream sent a tool call without `function`")
        arguments = function.get("arguments")
        arguments = dumps(arguments) if isinstance(arguments, dict) else typed(arguments, str, at + ".function.arguments")
        call_id, name = typed_field(call, "id", str, at + "."), typed_field(function, "name", str, at + ".function.")
        events.append(ToolCallStart(index, call_id or new_id("call_"), name or ""))
        if arguments:
            events.append(ToolCallDelta(index, arguments))
        events.append(ToolCallEnd(index))
    events.append(usage)
    events.append(Finish(finish_from_openai(typed_field(choice, "finish_reason", str, "choices[0]."), bool(calls))))
    return events


def error_from_upstream(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    parsed = error_body_json(body)
    # vLLM before its errors took OpenAI's shape: {"object": "error", "message": …, "type": …, "code": 400}.
    error = parsed if parsed.get("object") == "error" and "error" not in parsed else parsed.get("error")
    message = error_message(status, body, error)
    code = error.get("code") if isinstance(error, dict) else None
    code = str(code) if code is not None else None
    if _CONTEXT_TOO_LONG.search(message):
        code = "context_length_exceeded"
    return upstream_error(status, message, code=code, body=body, headers=headers)
