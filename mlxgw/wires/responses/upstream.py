"""OpenAI Responses, the upstream's face: a canonical request as the body a Responses server takes,
and its answers and errors back into canonical events.

Translated requests go out with `store: false` and `include: ["reasoning.encrypted_content"]`:
mlxgw sends the whole conversation every turn, so nothing needs keeping upstream (and the user's
data is not kept there on mlxgw's behalf), and with nothing stored OpenAI's reasoning can only come
back the next turn as the `encrypted_content` it gave, which only then is returned. Reasoning
another provider minted is dropped: OpenAI cannot read it.

A thinking budget becomes `reasoning.effort` by the table in `wires.effort`, with a summary asked
for, so the reasoning shows as thinking. Without a budget, no `reasoning` is sent: models that do
not reason refuse it.
"""

from __future__ import annotations

from typing import Any

from mlxgw.canonical import (
    ChatRequest,
    EncryptedReasoning,
    Event,
    Finish,
    FinishReason,
    ImagePart,
    Message,
    ResponseFormat,
    Start,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    Tool,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
    Usage,
)
from mlxgw.errors import UnreadableUpstream, UpstreamError
from mlxgw.wires.common import dumps, log, new_id
from mlxgw.wires.effort import openai_level
from mlxgw.wires.error_map import stream_error
from mlxgw.wires.fields import cannot, capped
from mlxgw.wires.json_schema import strict_for_openai
from mlxgw.wires.openai.upstream import SCHEMA_NAME
from mlxgw.wires.openai.upstream import error_from_upstream as error_from_upstream
from mlxgw.wires.upstream_fields import typed, typed_field
from mlxgw.wires.volatile import steady

# What `POST /responses/input_tokens` takes of a Responses body.
COUNT_FIELDS = (
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "reasoning", "text",
    "truncation", "previous_response_id", "conversation",
)


def passthrough_body(raw: dict, model: str, *, ceiling: int | None = None) -> dict:
    """A client's own Responses body: every field as sent but `model`, and `max_output_tokens`
    lowered to `ceiling` (or set to it, where the client asked for no limit)."""
    body = {**raw, "model": model}
    if ceiling is not None:
        body["max_output_tokens"] = capped(raw.get("max_output_tokens"), ceiling)
    return body


def count_body(body: dict) -> dict:
    """A Responses body as `/responses/input_tokens` takes it (it refuses the generation fields)."""
    return {k: v for k, v in body.items() if k in COUNT_FIELDS}


def build_request(req: ChatRequest, model: str, *, ceiling: int | None = None) -> dict:
    req = steady(req)
    if req.stop:
        raise cannot("stop_sequences" if req.protocol == "anthropic" else "stop", "the Responses API has no stop sequences")
    if req.logprobs or req.top_logprobs:
        raise cannot("logprobs" if req.logprobs else "top_logprobs", "mlxgw does not ask a Responses backend for log probabilities")
    if req.hosted_tools:
        log.debug("hosted tools go to a Responses backend only in passthrough; left out: %s", ", ".join(req.hosted_tools))
    kinds = {p.id: p.kind for m in req.messages for p in m.content if isinstance(p, ToolCallPart)}
    body: dict[str, Any] = {"model": model}
    if instructions := "\n\n".join(p.text for p in req.system if p.text):
        body["instructions"] = instructions
    body["input"] = [item for msg in req.messages for item in _items(msg, kinds)]
    if req.tools:
        body["tools"] = _tools_json(req.tools)
        if req.tool_choice:
            body["tool_choice"] = _tool_choice_json(req.tool_choice, req.tools)
            if req.tool_choice.disable_parallel:
                body["parallel_tool_calls"] = False
    optional = {
        "max_output_tokens": capped(req.max_tokens, ceiling),
        "temperature": req.temperature,
        "top_p": req.top_p,
        "user": req.user,
        "prompt_cache_key": req.prompt_cache_key,
        "text": _text_json(req.response_format),
        "reasoning": _reasoning_json(req.thinking_budget),
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    body["store"] = False
    body["include"] = ["reasoning.encrypted_content"]
    if req.stream:
        body["stream"] = True
    return body


def _reasoning_json(budget: int | None) -> dict | None:
    if budget is None:
        return None
    effort = openai_level(budget)
    return {"effort": effort} if effort == "none" else {"effort": effort, "summary": "auto"}


def _text_json(fmt: ResponseFormat | None) -> dict | None:
    if fmt is None:
        return None
    if fmt.type == "json_object" or fmt.schema is None:
        return {"format": {"type": "json_object"}}
    name = fmt.name or fmt.schema.get("title")
    spec: dict[str, Any] = {
        "type": "json_schema",
        "name": name if isinstance(name, str) and SCHEMA_NAME.fullmatch(name) else "response",
        "schema": fmt.schema,
        "strict": strict_for_openai(fmt.schema),
    }
    if fmt.description:
        spec["description"] = fmt.description
    return {"format": spec}


def _items(msg: Message, kinds: dict[str, str]) -> list[dict]:
    """One turn as input items, in its order: consecutive text and images make one message item."""
    items: list[dict] = []
    content: list[dict] = []

    def flush() -> None:
        if content:
            items.append({"type": "message", "role": msg.role, "content": list(content)})
            content.clear()

    for part in msg.content:
        if isinstance(part, TextPart):
            if part.text:
                content.append({"type": "output_text" if msg.role == "assistant" else "input_text", "text": part.text})
        elif isinstance(part, ImagePart):
            if msg.role == "user":
                content.append(_image_json(part))
        else:
            flush()
            item = _item(part, kinds)
            if item is not None:
                items.append(item)
    flush()
    return items


def _item(part: ToolCallPart | ToolResultPart | ThinkingPart, kinds: dict[str, str]) -> dict | None:
    if isinstance(part, ToolCallPart):
        if part.kind == "custom":
            item: dict[str, Any] = {"type": "custom_tool_call", "call_id": part.id, "name": part.name, "input": part.arguments}
        else:
            item = {"type": "function_call", "call_id": part.id, "name": part.name, "arguments": part.arguments or "{}"}
        if part.namespace:
            item["namespace"] = part.namespace
        return item
    if isinstance(part, ToolResultPart):
        kind = "custom_tool_call_output" if kinds.get(part.tool_call_id) == "custom" else "function_call_output"
        return {"type": kind, "call_id": part.tool_call_id, "output": _output(part)}
    if part.origin != "openai" or not part.encrypted:
        return None  # another provider's reasoning (or none of OpenAI's state): OpenAI cannot take it
    item = {"type": "reasoning", "summary": [{"type": "summary_text", "text": part.text}] if part.text else []}
    if part.item_id:
        item["id"] = part.item_id
    item["encrypted_content"] = part.encrypted
    return item


def _image_json(part: ImagePart) -> dict:
    url = part.url or f"data:{part.media_type};base64,{part.data}"
    return {"type": "input_image", "image_url": url, "detail": "auto"}


def _output(part: ToolResultPart) -> str | list[dict]:
    """A tool's output: its text, or, with an image among it, the list of parts Responses takes."""
    prefix = "Error: " if part.is_error else ""
    if not any(isinstance(p, ImagePart) for p in part.content):
        return prefix + "\n".join(p.text for p in part.content if isinstance(p, TextPart))
    parts = [{"type": "input_text", "text": prefix}] if prefix else []
    for p in part.content:
        parts.append({"type": "input_text", "text": p.text} if isinstance(p, TextPart) else _image_json(p))
    return parts


def _tools_json(tools: list[Tool]) -> list[dict]:
    """Tools as the client would have sent them: a namespace's tools grouped again, in first-seen order."""
    out: list[dict] = []
    spaces: dict[str, dict] = {}
    for tool in tools:
        entry = _tool_json(tool)
        if tool.namespace is None:
            out.append(entry)
        elif tool.namespace in spaces:
            spaces[tool.namespace]["tools"].append(entry)
        else:
            # The namespace's own description does not survive translation; its tools' do.
            spaces[tool.namespace] = {"type": "namespace", "name": tool.namespace, "description": "", "tools": [entry]}
            out.append(spaces[tool.namespace])
    return out


def _tool_json(tool: Tool) -> dict:
    if tool.kind == "custom":
        entry: dict[str, Any] = {"type": "custom", "name": tool.name}
        if tool.description:
            entry["description"] = tool.description
        if tool.format:
            entry["format"] = tool.format
        return entry
    entry = {"type": "function", "name": tool.name, "parameters": tool.input_schema, "strict": False}
    if tool.description:
        entry["description"] = tool.description
    return entry


def _tool_choice_json(choice: ToolChoice, tools: list[Tool]) -> Any:
    if choice.mode == "tool" and choice.name:
        kind = next((t.kind for t in tools if t.name == choice.name), "function")
        return {"type": kind, "name": choice.name}
    return {"any": "required", "none": "none"}.get(choice.mode, "auto")


# ---- answers ---------------------------------------------------------------------------------


def usage_from_responses(usage: Any, where: str = "usage") -> Usage:
    """Canonical input_tokens excludes cache reads and writes; Responses' input_tokens includes them."""
    usage = typed(usage, dict, where)
    if usage is None:
        return Usage()
    details = typed_field(usage, "input_tokens_details", dict, where + ".") or {}
    cached = typed_field(details, "cached_tokens", int, where + ".input_tokens_details.")
    written = typed_field(details, "cache_write_tokens", int, where + ".input_tokens_details.")
    total_in = typed_field(usage, "input_tokens", int, where + ".")
    return Usage(
        input_tokens=max(0, total_in - (cached or 0) - (written or 0)) if total_in is not None else None,
        output_tokens=typed_field(usage, "output_tokens", int, where + "."),
        cache_read_tokens=cached,
        cache_write_tokens=written,
    )


def finish_from_response(response: dict, had_calls: bool, refused: bool, where: str = "") -> Finish:
    """A finished response's status (and why it is incomplete) as a canonical finish."""
    status = typed_field(response, "status", str, where)
    if status == "incomplete":
        details = typed_field(response, "incomplete_details", dict, where) or {}
        reason = typed_field(details, "reason", str, where + "incomplete_details.")
        return Finish("refusal" if reason == "content_filter" else "max_tokens")
    finish: FinishReason = "tool_use" if had_calls else "refusal" if refused else "end_turn"
    return Finish(finish)


def failure(response: dict, raw: str) -> UpstreamError:
    """A `failed` response's error (or an `error` event's) as an UpstreamError."""
    error = typed_field(response, "error", dict) or {}
    return stream_error(error_json(error), raw)


def error_json(error: dict) -> dict:
    """A Responses error object ({code, message}) in the shape `stream_error` reads, typed by its code."""
    code = error.get("code")
    kind = {
        "rate_limit_exceeded": "rate_limit_error",
        "context_length_exceeded": "invalid_request_error",
        "server_error": "server_error",
    }.get(str(code), error.get("type") if isinstance(error.get("type"), str) else "server_error")
    if isinstance(code, str) and code.startswith(("invalid_", "image_", "unsupported_", "empty_")):
        kind = "invalid_request_error"
    return {"type": kind, "message": error.get("message") or "the Responses backend failed", "code": code}


def events_from_response(body: dict) -> list[Event]:
    if not isinstance(body, dict):
        raise UnreadableUpstream("upstream sent a response that is not an object")
    if typed_field(body, "status", str) == "failed" or (isinstance(body.get("error"), dict) and "output" not in body):
        raise failure(body, dumps(body))
    output = typed_field(body, "output", list)
    if output is None:
        raise UnreadableUpstream("upstream sent a response without an `output` array")
    usage = usage_from_responses(body.get("usage"))
    events: list[Event] = [
        Start(typed_field(body, "id", str), typed_field(body, "model", str), usage.input_tokens, usage.cache_read_tokens)
    ]
    calls = 0
    refused = False
    for i, item in enumerate(output):
        where = f"output[{i}]."
        item = typed(item, dict, f"output[{i}]")
        if item is None:
            continue
        kind = typed_field(item, "type", str, where)
        if kind == "reasoning":
            events.extend(reasoning_events(item, where))
        elif kind == "message":
            for j, part in enumerate(typed_field(item, "content", list, where) or []):
                text, refusal = content_text(typed(part, dict, f"{where}content[{j}]") or {}, f"{where}content[{j}].")
                refused = refused or refusal
                if text:
                    events.append(TextDelta(text))
        elif kind in ("function_call", "custom_tool_call"):
            events.extend(call_events(calls, item, where))
            calls += 1
        else:
            log.debug("ignoring a Responses output item of type %r", kind)
    events.append(usage)
    events.append(finish_from_response(body, calls > 0, refused))
    return events


def reasoning_events(item: dict, where: str) -> list[Event]:
    """A whole reasoning item: its summary (or its raw reasoning text) as thinking, and its encrypted state."""
    texts = []
    for key in ("summary", "content"):
        for j, part in enumerate(typed_field(item, key, list, where) or []):
            text = typed_field(typed(part, dict, f"{where}{key}[{j}]") or {}, "text", str, f"{where}{key}[{j}].")
            if text:
                texts.append(text)
        if texts:
            break
    events: list[Event] = [ThinkingDelta("\n\n".join(texts))] if texts else []
    if encrypted := typed_field(item, "encrypted_content", str, where):
        events.append(EncryptedReasoning(encrypted, typed_field(item, "id", str, where)))
    return events


def content_text(part: dict, where: str) -> tuple[str | None, bool]:
    """(text, whether it is a refusal) of one part of a message item."""
    kind = typed_field(part, "type", str, where)
    if kind == "refusal":
        return typed_field(part, "refusal", str, where), True
    if kind == "output_text":
        return typed_field(part, "text", str, where), False
    return None, False


def call_start(index: int, item: dict, where: str) -> ToolCallStart:
    kind = "custom" if typed_field(item, "type", str, where) == "custom_tool_call" else "function"
    call_id = typed_field(item, "call_id", str, where) or typed_field(item, "id", str, where) or new_id("call_")
    return ToolCallStart(index, call_id, typed_field(item, "name", str, where) or "", kind, typed_field(item, "namespace", str, where))


def call_arguments(item: dict, where: str) -> str:
    """A call item's arguments (a function's JSON text, a custom tool's raw input)."""
    key = "input" if typed_field(item, "type", str, where) == "custom_tool_call" else "arguments"
    return typed_field(item, key, str, where) or ""


def call_events(index: int, item: dict, where: str) -> list[Event]:
    events: list[Event] = [call_start(index, item, where)]
    if arguments := call_arguments(item, where):
        events.append(ToolCallDelta(index, arguments))
    events.append(ToolCallEnd(index))
    return events
