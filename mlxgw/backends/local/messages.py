"""Canonical requests as the Hugging Face chat format that models' chat templates take.

The daemon converts before sending, so the worker only ever sees plain JSON messages:
`{"role": "system" | "user" | "assistant" | "tool", "content": str, ...}` with OpenAI-style
`tool_calls` on assistant turns and OpenAI-style function tools.
"""

from __future__ import annotations

from typing import Any

from mlxgw.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from mlxgw.wires.tool_names import flattened
from mlxgw.wires.volatile import steady
from mlxgw.worker.frames import assistant_message

# Local models here are text-only; the note tells the model something was there.
IMAGE_PLACEHOLDER = "[image omitted: this model cannot see images]"


def to_hf_messages(request: ChatRequest) -> list[dict[str, Any]]:
    request = steady(flattened(request))
    messages: list[dict[str, Any]] = []
    system = "\n\n".join(part.text for part in request.system if part.text)
    if system:
        messages.append({"role": "system", "content": system})
    for message in request.messages:
        if message.role == "system":
            # In place: the worker renders it as the template can (mlxgw.worker.system_turns).
            messages.append({"role": "system", "content": _text_of(message.content)})
        elif message.role == "assistant":
            messages.append(_assistant(message))
        else:
            messages.extend(_user(message))
    return messages


def to_hf_tools(request: ChatRequest) -> list[dict[str, Any]]:
    if request.tool_choice is not None and request.tool_choice.mode == "none":
        return []
    request = flattened(request)
    tools = []
    for tool in request.tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        function["parameters"] = tool.input_schema
        tools.append({"type": "function", "function": function})
    return tools


def to_constraint(request: ChatRequest, tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What the worker holds the answer to (see `Job.constraint`): a forced tool choice makes it
    one call of the named tool (any tool for "required" / Anthropic "any"); else a JSON format;
    else, with `strict` tools, the calls the model makes to those tools are held to their schemas."""
    flat = flattened(request)
    choice = flat.tool_choice
    if tools and choice is not None and choice.mode in ("any", "tool"):
        names = [choice.name] if choice.mode == "tool" else [t["function"]["name"] for t in tools]
        return {"type": "tool_call", "names": names}
    fmt = request.response_format
    if fmt is not None:
        return {"type": "json_object"} if fmt.type == "json_object" else {"type": "json_schema", "schema": fmt.schema}
    strict = [t.name for t in flat.tools if t.strict]
    if tools and strict:
        return {"type": "tools", "strict": strict}
    return None


def _text_of(parts: list) -> str:
    texts = []
    for part in parts:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart):
            texts.append(IMAGE_PLACEHOLDER)
    return "\n".join(texts)


def _user(message: Message) -> list[dict[str, Any]]:
    """A user turn; its tool results become `tool` messages, in the order they came."""
    out: list[dict[str, Any]] = []
    pending: list = []

    def flush() -> None:
        if pending:
            out.append({"role": "user", "content": _text_of(pending)})
            pending.clear()

    for part in message.content:
        if isinstance(part, ToolResultPart):
            flush()
            content = _text_of(part.content)
            if part.is_error:
                content = f"Error: {content}"
            out.append({"role": "tool", "tool_call_id": part.tool_call_id, "content": content})
        elif isinstance(part, TextPart | ImagePart):
            pending.append(part)
    flush()
    if not out:
        out.append({"role": "user", "content": ""})
    return out


def _assistant(message: Message) -> dict[str, Any]:
    parts = message.content
    return assistant_message(
        "".join(p.text for p in parts if isinstance(p, TextPart)),
        "".join(p.text for p in parts if isinstance(p, ThinkingPart)),
        [(p.id, p.name, p.arguments) for p in parts if isinstance(p, ToolCallPart)],
    )


