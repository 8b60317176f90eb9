"""Tool names for targets without namespaces or freeform tools (Chat Completions, Anthropic, the
local model), both ways.

Out: a Responses `namespace` tool's functions become plain functions named `NAMESPACE__NAME`, and a
`custom` (freeform) tool becomes a function taking one string, `{"input": ...}`; history calls are
rewritten the same way. Back: `Restorer` maps the target's calls of those functions to the
namespace, name and kind the client knows, a custom call's `{"input": ...}` to its raw input. Both
directions derive the mapping from the request's tools alone, so they always agree.

Flattened names keep to the strictest target's rule (Anthropic and OpenAI: at most 64 characters
of `[a-zA-Z0-9_-]`); one that would not fit, or that another tool already holds, is cut and ends in
a short hash of what it stands for.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace

from mlxgw.canonical import (
    ChatRequest,
    Event,
    Finish,
    Message,
    Tool,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
)
from mlxgw.wires.common import dumps, log

MAX_NAME = 64
SEPARATOR = "__"
INPUT = "input"  # a flattened custom tool's one parameter
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_SAFE = re.compile(r"[a-zA-Z0-9_-]{1,64}")


@dataclass(frozen=True)
class ClientTool:
    """What the client calls a tool: its name, namespace and kind."""

    name: str
    namespace: str | None = None
    kind: str = "function"


def _hashed(text: str, key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{text[: MAX_NAME - len(digest) - 1]}_{digest}"


def _candidate(tool: ClientTool) -> str:
    joined = f"{tool.namespace}{SEPARATOR}{tool.name}" if tool.namespace else tool.name
    safe = _UNSAFE.sub("_", joined)
    if safe == joined and len(safe) <= MAX_NAME:
        return safe
    return _hashed(safe or "tool", f"{tool.namespace}\x00{tool.name}")


class ToolNames:
    """The request's tools as a target without namespaces or freeform tools sees them."""

    def __init__(self, tools: list[Tool]) -> None:
        self.flat: dict[str, ClientTool] = {}  # target name -> the client's, for tools that change
        self._names: dict[ClientTool, str] = {}
        taken = {t.name for t in tools if t.namespace is None and t.kind == "function"}
        for tool in tools:
            client = ClientTool(tool.name, tool.namespace, tool.kind)
            if client.namespace is None and client.kind == "function":
                continue  # a plain function keeps its name: it already follows its own protocol's rule
            name = _candidate(client)
            if name in taken:
                name = _hashed(name, f"{client.namespace}\x00{client.name}\x00{client.kind}")
            taken.add(name)
            self.flat[name] = client
            self._names[client] = name

    def name_for(self, name: str, namespace: str | None, kind: str = "function") -> str:
        """The target's name for a client's tool (a history call's tool may no longer be offered)."""
        client = ClientTool(name, namespace, kind)
        if client in self._names:
            return self._names[client]
        return name if namespace is None and _SAFE.fullmatch(name) else _candidate(client)


def flat_tools(request: ChatRequest, names: ToolNames) -> list[Tool]:
    """The request's tools as plain functions. Hosted tools never got here; they are left out."""
    if request.hosted_tools:
        log.debug("leaving out hosted tools the target cannot run: %s", ", ".join(request.hosted_tools))
    return [_flat_tool(tool, names) for tool in request.tools]


def _flat_tool(tool: Tool, names: ToolNames) -> Tool:
    name = names.name_for(tool.name, tool.namespace, tool.kind)
    if tool.kind == "function":
        return replace(tool, name=name, namespace=None)
    return Tool(name, tool.description, _custom_schema(tool.format))


def _custom_schema(fmt: dict | None) -> dict:
    about = "The tool's whole input, as free text."
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        about += f" It must follow this {fmt.get('syntax') or ''} grammar:\n{fmt['definition']}"
    return {
        "type": "object",
        "properties": {INPUT: {"type": "string", "description": about}},
        "required": [INPUT],
        "additionalProperties": False,
    }


def flat_call(part: ToolCallPart, names: ToolNames) -> ToolCallPart:
    """A history call as the target would have made it."""
    name = names.name_for(part.name, part.namespace, part.kind)
    arguments = dumps({INPUT: part.arguments}) if part.kind == "custom" else part.arguments
    return ToolCallPart(part.id, name, arguments)


def flat_messages(messages: list[Message], names: ToolNames) -> list[Message]:
    return [
        Message(m.role, [flat_call(p, names) if isinstance(p, ToolCallPart) else p for p in m.content])
        for m in messages
    ]


def flat_choice(choice: ToolChoice | None, request: ChatRequest, names: ToolNames) -> ToolChoice | None:
    if choice is None or choice.mode != "tool" or choice.name is None:
        return choice
    tool = next((t for t in request.tools if t.name == choice.name), None)
    if tool is None:
        return choice
    return replace(choice, name=names.name_for(tool.name, tool.namespace, tool.kind))


def flattened(request: ChatRequest) -> ChatRequest:
    """The request as a target without namespaces or freeform tools takes it; unchanged when it has
    none (every request from a Chat Completions or Anthropic client)."""
    calls = any(isinstance(p, ToolCallPart) and (p.namespace or p.kind != "function") for m in request.messages for p in m.content)
    if not calls and not request.hosted_tools and all(t.namespace is None and t.kind == "function" for t in request.tools):
        return request
    names = ToolNames(request.tools)
    return replace(
        request,
        tools=flat_tools(request, names),
        messages=flat_messages(request.messages, names),
        tool_choice=flat_choice(request.tool_choice, request, names),
    )


class Restorer:
    """A target's answer events → the same answer in the client's tool names.

    A call of a flattened custom tool streams `{"input": "..."}`; its fragments are held until the
    call ends and then sent as the raw input, in one fragment.
    """

    def __init__(self, tools: list[Tool]) -> None:
        self.names = ToolNames(tools)
        self._held: dict[int, list[str]] = {}  # custom calls' argument fragments, by call index

    def feed(self, event: Event) -> list[Event]:
        if isinstance(event, ToolCallStart):
            client = self.names.flat.get(event.name) if event.kind == "function" and event.namespace is None else None
            if client is None:
                return [event]
            if client.kind == "custom":
                self._held[event.index] = []
            return [ToolCallStart(event.index, event.id, client.name, client.kind, client.namespace)]
        if isinstance(event, ToolCallDelta) and event.index in self._held:
            self._held[event.index].append(event.arguments)
            return []
        if isinstance(event, ToolCallEnd) and event.index in self._held:
            return [*self._release(event.index), event]
        if isinstance(event, Finish):
            # A call the target never ended still gets its input before the answer ends.
            return [ev for index in list(self._held) for ev in self._release(index)] + [event]
        return [event]

    def _release(self, index: int) -> list[Event]:
        raw = _custom_input("".join(self._held.pop(index)))
        return [ToolCallDelta(index, raw)] if raw else []


def _custom_input(arguments: str) -> str:
    """The raw input out of a flattened custom call's arguments; text that is not the expected
    object is passed on as the input itself rather than lost."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        log.debug("a custom tool call's arguments are not JSON; passing them on as its input")
        return arguments
    if isinstance(value, dict) and isinstance(value.get(INPUT), str):
        return value[INPUT]
    if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), str):
        return next(iter(value.values()))  # the model named the one parameter differently
    return arguments if value else ""
