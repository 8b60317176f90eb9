"""OpenAI Responses, the client's face: a request to `POST /v1/responses` into the canonical model,
and canonical answers and errors back into Responses JSON.

`instructions` and the `system`/`developer` messages before the first turn become the system prompt
(later ones stay in place); `message`, `function_call(_output)`, `custom_tool_call(_output)` and
`reasoning` items become turns; `function`, `custom` and `namespace` tools become canonical tools,
and hosted tools (`web_search`…) are named in `hosted_tools`, left for a Responses backend to run.
`reasoning.effort` gives the thinking budget of the table in `wires.effort`. A field the gateway
reads must have the right type, or the request is a 400 naming it; fields it does not read stay in `raw` for passthrough (debug log).

Opaque reasoning state goes out in a reasoning item's `encrypted_content`: OpenAI's as it came, and
Anthropic's thinking signature (or redacted thinking) behind a marker, so that the client's next turn
brings it back to Anthropic, and only there."""

from __future__ import annotations

import time
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
    ToolResultPart,
)
from mlxgw.errors import GatewayError
from mlxgw.wires.common import dumps, log, lower_headers, merge_turns, new_id, parse_data_url, response_id
from mlxgw.wires.effort import OPENAI_LEVELS, budget_for
from mlxgw.wires.fields import (
    invalid,
    opt_bool,
    opt_choice,
    opt_int,
    opt_number,
    opt_object,
    opt_str,
    require_model,
    require_object,
    str_list,
)
from mlxgw.wires.openai.stream import error_object
from mlxgw.wires.responses.render import (
    ANTHROPIC_REDACTED,
    ANTHROPIC_SIGNATURE,
    INCOMPLETE,
    TOOL_SEARCH,
    call_item,
    encrypted_content,
    message_item,
    reasoning_item,
    response_object,
    searches_tools,
    status_for,
    summarised,
    tool_search_item,
)
from mlxgw.wires.responses.request_tools import parse_tool_choice, parse_tools

# Client headers a Responses upstream is sent in passthrough (Codex's session and request ids).
FORWARDED_HEADERS = ("openai-beta", "originator", "session-id", "session_id", "x-client-request-id")


# Every top-level field of a Responses request mlxgw knows; the rest is logged and left in `raw`.
_KNOWN = {
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "reasoning",
    "max_output_tokens", "temperature", "top_p", "text", "prompt_cache_key", "user", "safety_identifier",
    "metadata", "truncation", "stream", "stream_options", "store", "previous_response_id", "include",
}


_ROLES = ("user", "assistant", "system", "developer")


def parse_request(body: Any, headers: Mapping[str, str]) -> ChatRequest:
    body = require_object(body)
    model = require_model(body)
    if unknown := sorted(set(body) - _KNOWN):
        log.debug("responses request: fields kept for passthrough, ignored when translating: %s", ", ".join(unknown))
    system: list[TextPart] = []
    if instructions := opt_str(body, "instructions"):
        system.append(TextPart(instructions))
    loaded: list[Tool] = []
    messages = _input(body, system, loaded)
    tools, hosted = parse_tools(body.get("tools"))
    tools += [t for t in loaded if (t.namespace, t.name) not in {(u.namespace, u.name) for u in tools}]
    tool_choice, tools = parse_tool_choice(body, tools)
    reasoning = opt_object(body, "reasoning") or {}
    effort = opt_choice(reasoning, "effort", OPENAI_LEVELS, "reasoning.effort")
    opt_choice(reasoning, "summary", ("auto", "concise", "detailed"), "reasoning.summary")
    opt_choice(body, "truncation", ("auto", "disabled"))
    opt_object(body, "metadata")
    opt_object(body, "stream_options")
    opt_bool(body, "store")
    opt_str(body, "previous_response_id")
    str_list(body.get("include"), "include")
    low = lower_headers(headers)
    return ChatRequest(
        model=model,
        messages=merge_turns(messages),
        system=system,
        tools=tools,
        tool_choice=tool_choice,
        max_tokens=opt_int(body, "max_output_tokens", positive=True),
        temperature=opt_number(body, "temperature", 0, 2),
        top_p=opt_number(body, "top_p", 0, 1),
        stream=bool(opt_bool(body, "stream")),
        thinking_budget=budget_for(effort),
        user=opt_str(body, "user") or opt_str(body, "safety_identifier"),
        response_format=_text_format(body),
        protocol="responses",
        raw=body,
        client_headers={k: low[k] for k in FORWARDED_HEADERS if k in low},
        hosted_tools=hosted,
        prompt_cache_key=opt_str(body, "prompt_cache_key"),
    )


def _input(body: dict, system: list[TextPart], loaded: list[Tool]) -> list[Message]:
    """The turns of `input`; system and developer messages before the first turn go to `system`
    (later ones stay in place as system turns), and the tools a client tool search loaded (its
    `tool_search_output` items) to `loaded`."""
    value = body.get("input")
    if value is None:
        if body.get("previous_response_id") is None:
            raise invalid("`input` is required", "input")
        return []
    if isinstance(value, str):
        return [Message("user", [TextPart(value)])]
    if not isinstance(value, list):
        raise invalid("`input` must be a string or an array of input items", "input")
    messages: list[Message] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"`{where}` must be an object", where)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise invalid(f"`{where}.role` must be one of {', '.join(_ROLES)}", f"{where}.role")
            if role in ("system", "developer") and not messages:
                system.extend(_content(item.get("content"), f"{where}.content", images=False))
            elif role in ("system", "developer"):
                # Kept in place, as in Chat Completions: moved to the head, a late instruction would
                # rewrite the prompt's start and so every cached prefix of this conversation.
                parts = _content(item.get("content"), f"{where}.content", images=False)
                messages.append(Message("system", [p for p in parts if isinstance(p, TextPart) and p.text]))
            else:
                messages.append(Message(role, list(_content(item.get("content"), f"{where}.content"))))
        elif kind in ("function_call", "custom_tool_call"):
            messages.append(Message("assistant", [_call(item, kind, where)]))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.append(Message("user", [_call_output(item, where)]))
        elif kind == "tool_search_call" and item.get("execution") == "client":
            arguments = item.get("arguments")
            messages.append(Message("assistant", [ToolCallPart(_str(item, "call_id", where), TOOL_SEARCH, dumps(arguments or {}))]))
        elif kind == "tool_search_output" and item.get("execution") == "client":
            found, _ = parse_tools(item.get("tools"), f"{where}.tools")
            loaded.extend(found)
            listing = [{"name": t.name, "namespace": t.namespace, "description": t.description} for t in found]
            messages.append(Message("user", [ToolResultPart(_str(item, "call_id", where), [TextPart(dumps(listing))])]))
        elif kind == "reasoning":
            messages.append(Message("assistant", [_reasoning(item, where)]))
        elif kind == "item_reference":
            raise invalid(
                f"`{where}`: item references are not supported; send the item itself, or use previous_response_id",
                f"{where}.type",
            )
        elif isinstance(kind, str):
            # A hosted tool's call from an earlier turn (web_search_call…): only its own backend can use it.
            log.debug("responses request: dropping %s item at %s", kind, where)
        else:
            raise invalid(f"`{where}` must be an object with a `type`", f"{where}.type")
    return messages


def _content(content: Any, param: str, *, images: bool = True) -> list[TextPart | ImagePart]:
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise invalid(f"`{param}` must be a string or an array of content parts", param)
    parts: list[TextPart | ImagePart] = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            parts.append(TextPart(_str(part, "text", where)))
        elif kind == "refusal":
            parts.append(TextPart(_str(part, "refusal", where)))
        elif kind == "input_image" and images:
            parts.append(_image(part, where))
        elif kind == "input_file":
            raise invalid(f"`{where}`: files are not supported; send their text as input_text", f"{where}.type")
        elif kind is None:
            raise invalid(f"`{where}` must be an object with a `type`", where)
        else:
            raise invalid(f"content part type {kind!r} is not supported here", f"{where}.type")
    return parts


def _image(part: dict, where: str) -> ImagePart:
    if part.get("file_id") is not None:
        raise invalid(
            f"`{where}.file_id`: mlxgw has no file store; send the image as a URL or a base64 data URL in image_url",
            f"{where}.file_id",
        )
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise invalid(f"`{where}.image_url` must be a URL or a data URL", f"{where}.image_url")
    inline = parse_data_url(url)
    if inline:
        return ImagePart(media_type=inline[0], data=inline[1])
    if url.startswith("data:"):
        raise invalid("image data URLs must be base64 (`data:<type>;base64,...`)", f"{where}.image_url")
    return ImagePart(url=url)


def _call(item: dict, kind: str, where: str) -> ToolCallPart:
    if kind == "function_call":
        arguments = item.get("arguments")
        if isinstance(arguments, dict):
            arguments = dumps(arguments)
        elif not isinstance(arguments, str):
            raise invalid(f"`{where}.arguments` must be a JSON string", f"{where}.arguments")
    else:
        arguments = _str(item, "input", where)
    return ToolCallPart(
        _str(item, "call_id", where),
        _str(item, "name", where),
        arguments,
        "function" if kind == "function_call" else "custom",
        opt_str(item, "namespace", f"{where}.namespace"),
    )


def _call_output(item: dict, where: str) -> ToolResultPart:
    output = item.get("output")
    if isinstance(output, str):
        content: list[TextPart | ImagePart] = [TextPart(output)]
    elif isinstance(output, list):
        content = _content(output, f"{where}.output")
    else:
        raise invalid(f"`{where}.output` must be a string or an array of content parts", f"{where}.output")
    return ToolResultPart(_str(item, "call_id", where), content)


def _reasoning(item: dict, where: str) -> ThinkingPart:
    texts = _texts(item.get("content"), f"{where}.content") or _texts(item.get("summary"), f"{where}.summary")
    part = ThinkingPart("".join(texts) if item.get("content") else "\n\n".join(texts))
    part.item_id = opt_str(item, "id", f"{where}.id")
    encrypted = opt_str(item, "encrypted_content", f"{where}.encrypted_content")
    if encrypted and encrypted.startswith(ANTHROPIC_SIGNATURE):
        part.signature, part.origin = encrypted.removeprefix(ANTHROPIC_SIGNATURE), "anthropic"
    elif encrypted and encrypted.startswith(ANTHROPIC_REDACTED):
        part.redacted, part.origin = encrypted.removeprefix(ANTHROPIC_REDACTED), "anthropic"
    elif encrypted:
        part.encrypted, part.origin = encrypted, "openai"
    return part


def _texts(value: Any, param: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"`{param}` must be an array", param)
    texts = []
    for j, part in enumerate(value):
        if not isinstance(part, dict):
            raise invalid(f"`{param}[{j}]` must be an object", f"{param}[{j}]")
        texts.append(_str(part, "text", f"{param}[{j}]"))
    return texts


def _str(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise invalid(f"`{where}.{key}` must be a string", f"{where}.{key}")
    return value


def _text_format(body: dict) -> ResponseFormat | None:
    text = opt_object(body, "text")
    fmt = opt_object(text or {}, "format", "text.format")
    if fmt is None:
        return None
    kind = opt_choice(fmt, "type", ("text", "json_object", "json_schema"), "text.format.type")
    if kind is None:
        raise invalid("`text.format.type` is required", "text.format.type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object", "text.format")
    schema = opt_object(fmt, "schema", "text.format.schema")
    if schema is None:
        raise invalid("`text.format.schema` is required with type json_schema", "text.format.schema")
    return ResponseFormat(
        "json_schema",
        "text.format",
        schema=schema,
        name=opt_str(fmt, "name", "text.format.name"),
        description=opt_str(fmt, "description", "text.format.description"),
    )


def render_response(resp: ChatResponse, model: str, request_id: str, *, echo: dict | None = None) -> dict:
    """The whole Response object; `echo` is the client's request body, whose settings it repeats."""
    status = status_for(resp.finish.reason)
    output = [_item(part, summarised(echo), searches_tools(echo), status) for part in resp.content]
    return response_object(
        response_id(None, request_id, "resp_"),
        int(time.time()),
        model,
        echo,
        status,
        [item for item in output if item is not None],
        resp.usage,
        incomplete=INCOMPLETE.get(resp.finish.reason),
    )


def _item(part: Part, summary: bool, searches: bool, status: str) -> dict | None:
    if isinstance(part, ThinkingPart):
        return reasoning_item(part.item_id or new_id("rs_"), part.text, summary, encrypted_content(part), "completed")
    if isinstance(part, TextPart) and part.text:
        return message_item(new_id("msg_"), part.text, status)
    if isinstance(part, ToolCallPart) and searches and (part.name, part.namespace) == (TOOL_SEARCH, None):
        return tool_search_item(new_id("tsc_"), part.id or new_id("call_"), part.arguments, "completed")
    if isinstance(part, ToolCallPart):
        item_id = new_id("ctc_" if part.kind == "custom" else "fc_")
        return call_item(item_id, part.id or new_id("call_"), part.name, part.arguments, part.kind, part.namespace, "completed")
    return None


def render_error(err: GatewayError, request_id: str) -> tuple[int, dict]:
    return err.status, {"error": error_object(err)}
