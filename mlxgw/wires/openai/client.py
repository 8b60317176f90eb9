"""OpenAI Chat Completions, the client's face: a request to `POST /v1/chat/completions` into the
canonical model, and canonical answers and errors back into Chat Completions JSON.

`reasoning_effort` becomes a thinking budget by the table in `wires.effort` ("none" asks for no
thinking)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mlxgw.canonical import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
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
from mlxgw.wires.common import (
    FINISH_TO_OPENAI,
    dumps,
    merge_turns,
    new_id,
    parse_data_url,
    response_id,
)
from mlxgw.wires.effort import OPENAI_LEVELS, budget_for
from mlxgw.wires.fields import (
    invalid,
    opt_bool,
    opt_choice,
    opt_int,
    opt_number,
    opt_object,
    opt_str,
    require_messages,
    require_model,
    require_object,
    str_list,
)
from mlxgw.wires.openai.stream import (
    error_object,
    usage_to_openai,
)

_TOOL_CHOICE_MODES = {"auto": "auto", "none": "none", "required": "any"}


MAX_TOP_LOGPROBS = 20




def parse_request(body: Any, headers: Mapping[str, str]) -> ChatRequest:
    body = require_object(body)
    model = require_model(body)
    raw_messages = require_messages(body)
    if not raw_messages:
        raise invalid("`messages` must contain at least one message", "messages")
    system: list[TextPart] = []
    messages: list[Message] = []
    for i, msg in enumerate(raw_messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise invalid(f"`{param}` must be an object", param)
        role = msg.get("role")
        if role in ("system", "developer") and not messages:
            system.extend(_parts(msg.get("content"), f"{param}.content", images=False))
        elif role in ("system", "developer"):
            # Kept in place: moved to the head, a late instruction would rewrite the prompt's start.
            parts = _parts(msg.get("content"), f"{param}.content", images=False)
            messages.append(Message("system", [p for p in parts if isinstance(p, TextPart) and p.text]))
        elif role == "user":
            if msg.get("content") is None:
                raise invalid(f"`{param}.content` is required", f"{param}.content")
            messages.append(Message("user", _parts(msg["content"], f"{param}.content")))
        elif role == "assistant":
            messages.append(Message("assistant", _assistant_parts(msg, param)))
        elif role == "tool":
            messages.append(Message("user", [_tool_result(msg, param)]))
        else:
            raise invalid(
                f"`{param}.role` must be one of system, developer, user, assistant, tool", f"{param}.role"
            )
    if body.get("n") is not None and opt_int(body, "n") != 1:
        raise invalid("only `n: 1` is supported", "n")
    effort = opt_choice(body, "reasoning_effort", OPENAI_LEVELS)
    stream_options = opt_object(body, "stream_options")
    top_logprobs = opt_int(body, "top_logprobs")
    if top_logprobs is not None and not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
        raise invalid(f"`top_logprobs` must be between 0 and {MAX_TOP_LOGPROBS}", "top_logprobs")
    max_completion = opt_int(body, "max_completion_tokens", positive=True)
    return ChatRequest(
        model=model,
        messages=merge_turns(messages),
        system=system,
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body),
        max_tokens=max_completion
        if max_completion is not None
        else opt_int(body, "max_tokens", positive=True),
        temperature=opt_number(body, "temperature", 0, 2),
        top_p=opt_number(body, "top_p", 0, 1),
        top_k=opt_int(body, "top_k"),
        min_p=opt_number(body, "min_p", 0, 1),
        stop=str_list(body.get("stop"), "stop"),
        seed=opt_int(body, "seed"),
        stream=bool(opt_bool(body, "stream")),
        thinking_budget=budget_for(effort),
        user=opt_str(body, "user"),
        response_format=_response_format(body.get("response_format")),
        logprobs=bool(opt_bool(body, "logprobs")),
        top_logprobs=top_logprobs or None,
        protocol="openai",
        raw=body,
        # Nothing the client sent is needed upstream: OpenAI's only request headers are auth.
        client_headers={},
        include_usage=bool(opt_bool(stream_options or {}, "include_usage")),
    )


def _response_format(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("`response_format` must be an object", "response_format")
    kind = opt_choice(value, "type", ("text", "json_object", "json_schema"), "response_format.type")
    if kind is None:
        raise invalid("`response_format.type` is required", "response_format.type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object", "response_format")
    spec = opt_object(value, "json_schema", "response_format.json_schema")
    if spec is None:
        raise invalid("`response_format.json_schema` is required with type json_schema", "response_format.json_schema")
    where = "response_format.json_schema"
    schema = opt_object(spec, "schema", f"{where}.schema")
    return ResponseFormat(
        "json_schema" if schema is not None else "json_object",
        "response_format",
        schema=schema,
        name=opt_str(spec, "name", f"{where}.name"),
        description=opt_str(spec, "description", f"{where}.description"),
    )


def _parts(content: Any, param: str, *, images: bool = True) -> list[TextPart | ImagePart]:
    if isinstance(content, str):
        return [TextPart(content)]
    if content is None:
        return []
    if not isinstance(content, list):
        raise invalid(f"`{param}` must be a string or an array of content parts", param)
    parts: list[TextPart | ImagePart] = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise invalid(f"`{where}.{kind}` must be a string", f"{where}.{kind}")
            parts.append(TextPart(text))
        elif kind == "image_url" and images:
            parts.append(_image(part.get("image_url"), f"{where}.image_url"))
        elif kind is None:
            raise invalid(f"`{where}` must be an object with a `type`", where)
        else:
            raise invalid(f"content part type {kind!r} is not supported here", f"{where}.type")
    return parts


def _image(value: Any, param: str) -> ImagePart:
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise invalid(f"`{param}.url` must be a string", f"{param}.url")
    inline = parse_data_url(url)
    if inline:
        return ImagePart(media_type=inline[0], data=inline[1])
    if url.startswith("data:"):
        raise invalid("image data URLs must be base64 (`data:<type>;base64,...`)", f"{param}.url")
    return ImagePart(url=url)


def _assistant_parts(msg: dict, param: str) -> list:
    parts: list = []
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(ThinkingPart(reasoning))
    parts.extend(_parts(msg.get("content"), f"{param}.content", images=False))
    calls = msg.get("tool_calls")
    if calls is None:
        return parts
    if not isinstance(calls, list):
        raise invalid(f"`{param}.tool_calls` must be an array", f"{param}.tool_calls")
    for j, call in enumerate(calls):
        where = f"{param}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid(f"`{where}.function.name` must be a string", f"{where}.function.name")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = dumps(arguments)
        elif arguments is None:
            arguments = ""
        elif not isinstance(arguments, str):
            raise invalid(
                f"`{where}.function.arguments` must be a JSON string", f"{where}.function.arguments"
            )
        call_id = call.get("id")
        if call_id is not None and not isinstance(call_id, str):
            raise invalid(f"`{where}.id` must be a string", f"{where}.id")
        parts.append(ToolCallPart(call_id or new_id("call_"), function["name"], arguments))
    return parts


def _tool_result(msg: dict, param: str) -> ToolResultPart:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid(f"`{param}.tool_call_id` is required for tool messages", f"{param}.tool_call_id")
    content = _parts(msg.get("content"), f"{param}.content", images=False)
    return ToolResultPart(call_id, list(content))


def _tools(value: Any) -> list[Tool]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("`tools` must be an array", "tools")
    tools = []
    for j, tool in enumerate(value):
        where = f"tools[{j}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise invalid(f"`{where}` must be a function tool", f"{where}.type")
        function = tool.get("function")
        if (
            not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not function["name"]
        ):
            raise invalid(f"`{where}.function.name` must be a non-empty string", f"{where}.function.name")
        description = opt_str(function, "description", f"{where}.function.description")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise invalid(f"`{where}.function.parameters` must be an object", f"{where}.function.parameters")
        strict = opt_bool(function, "strict", f"{where}.function.strict") is True
        tools.append(Tool(function["name"], description, parameters or {"type": "object", "properties": {}}, strict=strict))
    return tools


def _tool_choice(body: dict) -> ToolChoice | None:
    value = body.get("tool_choice")
    disable_parallel = opt_bool(body, "parallel_tool_calls") is False
    if value is None:
        return ToolChoice(disable_parallel=True) if disable_parallel else None
    if isinstance(value, str) and value in _TOOL_CHOICE_MODES:
        return ToolChoice(_TOOL_CHOICE_MODES[value], disable_parallel=disable_parallel)  # type: ignore[arg-type]
    function = value.get("function") if isinstance(value, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return ToolChoice("tool", function["name"], disable_parallel)
    raise invalid(
        '`tool_choice` must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}',
        "tool_choice",
    )


def render_response(resp: ChatResponse, model: str, request_id: str) -> dict:
    texts = [p.text for p in resp.content if isinstance(p, TextPart)]
    thinking = [p.text for p in resp.content if isinstance(p, ThinkingPart) and p.text]
    calls = [
        {
            "id": p.id or new_id("call_"),
            "type": "function",
            "function": {"name": p.name, "arguments": p.arguments or "{}"},
        }
        for p in resp.content
        if isinstance(p, ToolCallPart)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    return {
        "id": response_id(resp.id, request_id, "chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_TO_OPENAI[resp.finish.reason],
            }
        ],
        "usage": usage_to_openai(resp.usage),
    }


def render_error(err: GatewayError, request_id: str) -> tuple[int, dict]:
    return err.status, {"error": error_object(err)}
