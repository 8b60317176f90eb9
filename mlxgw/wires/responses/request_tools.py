"""The `tools` and `tool_choice` of a Responses request: function, custom (freeform) and namespace
tools into canonical tools, hosted tools named for a target that leaves them out."""

from __future__ import annotations

from typing import Any

from mlxgw.canonical import (
    Tool,
    ToolChoice,
)
from mlxgw.wires.common import log
from mlxgw.wires.fields import (
    invalid,
    opt_bool,
    opt_choice,
    opt_object,
    opt_str,
)
from mlxgw.wires.responses.render import (
    TOOL_SEARCH,
)

_TOOL_CHOICE_MODES = {"auto": "auto", "none": "none", "required": "any"}


def parse_tools(value: Any, param: str = "tools") -> tuple[list[Tool], list[str]]:
    """The client's tools, and the names of the hosted ones (web_search…) only a Responses backend
    runs. A tool search Codex runs itself (`execution: "client"`) is a function the model calls."""
    if value is None:
        return [], []
    if not isinstance(value, list):
        raise invalid(f"`{param}` must be an array", param)
    tools: list[Tool] = []
    hosted: list[str] = []
    for j, tool in enumerate(value):
        where = f"{param}[{j}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise invalid(f"`{where}` must be an object with a `type`", f"{where}.type")
        if tool["type"] == "namespace":
            namespace = _name(tool, where)
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise invalid(f"`{where}.tools` must be an array", f"{where}.tools")
            for k, member in enumerate(inner):
                tools.append(_tool(member, f"{where}.tools[{k}]", namespace))
        elif tool["type"] in ("function", "custom"):
            tools.append(_tool(tool, where, None))
        elif tool["type"] == TOOL_SEARCH and tool.get("execution") == "client":
            description = opt_str(tool, "description", f"{where}.description")
            parameters = opt_object(tool, "parameters", f"{where}.parameters")
            tools.append(Tool(TOOL_SEARCH, description, parameters or {"type": "object", "properties": {}}))
        elif tool["type"] not in hosted:
            hosted.append(tool["type"])
    return tools, hosted


def _tool(tool: Any, where: str, namespace: str | None) -> Tool:
    if not isinstance(tool, dict) or tool.get("type") not in ("function", "custom"):
        raise invalid(f"`{where}` must be a function or custom tool", f"{where}.type")
    name = _name(tool, where)
    description = opt_str(tool, "description", f"{where}.description")
    if tool["type"] == "custom":
        return Tool(name, description, kind="custom", namespace=namespace, format=opt_object(tool, "format", f"{where}.format"))
    parameters = opt_object(tool, "parameters", f"{where}.parameters")
    # Only an explicit true counts: the API defaults to strict, but clients that do not want the
    # schema held (Codex) say false, and most never set it.
    strict = opt_bool(tool, "strict", f"{where}.strict") is True
    return Tool(name, description, parameters or {"type": "object", "properties": {}}, namespace=namespace, strict=strict)


def _name(tool: dict, where: str) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(f"`{where}.name` must be a non-empty string", f"{where}.name")
    return name


def parse_tool_choice(body: dict, tools: list[Tool]) -> tuple[ToolChoice | None, list[Tool]]:
    """The tool choice, and the tools left to the model: `allowed_tools` narrows the list, as no
    other target can keep tools in the prompt that the model may not call."""
    value = body.get("tool_choice")
    disable_parallel = opt_bool(body, "parallel_tool_calls") is False
    if value is None:
        return (ToolChoice(disable_parallel=True) if disable_parallel else None), tools
    if isinstance(value, str) and value in _TOOL_CHOICE_MODES:
        return ToolChoice(_TOOL_CHOICE_MODES[value], disable_parallel=disable_parallel), tools  # type: ignore[arg-type]
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("function", "custom"):
        return ToolChoice("tool", _name(value, "tool_choice"), disable_parallel), tools
    if kind == "allowed_tools":
        mode = opt_choice(value, "mode", ("auto", "required"), "tool_choice.mode") or "auto"
        allowed = value.get("tools")
        if not isinstance(allowed, list):
            raise invalid("`tool_choice.tools` must be an array", "tool_choice.tools")
        names = {t.get("name") for t in allowed if isinstance(t, dict)}
        kept = [t for t in tools if t.name in names]
        return ToolChoice("any" if mode == "required" else "auto", disable_parallel=disable_parallel), kept
    if isinstance(kind, str):
        # A hosted tool's choice (web_search, mcp…): a translating target has no such tool.
        log.debug("responses request: tool_choice %r left to the model", kind)
        return ToolChoice(disable_parallel=disable_parallel), tools
    raise invalid(
        '`tool_choice` must be "auto", "none", "required", {"type": "function", "name": ...} or {"type": "allowed_tools", ...}',
        "tool_choice",
    )
