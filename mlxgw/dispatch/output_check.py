"""Whether a local answer is what its request asked for: each tool call names a tool the request
offered and its arguments are JSON that the tool's schema accepts; text required to be JSON
(`response_format`) is, and matches the schema given. A problem is a short sentence for the
request log and the client's error; None means the part is fine.

Only what the request offers is checked: a request with neither tools nor a JSON format needs no
check (`OutputCheck.needed`), so its answer is never held back."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator, SchemaError

from mlxgw.canonical import ChatRequest, ToolCallStart

SHOWN = 120  # characters of a bad part quoted in its problem


class OutputCheck:
    def __init__(self, request: ChatRequest) -> None:
        self.tools = {(t.name, t.namespace): t for t in request.tools}
        self.response_format = request.response_format

    @staticmethod
    def needed(request: ChatRequest) -> bool:
        return bool(request.tools) or request.response_format is not None

    @property
    def requires_json(self) -> bool:
        return self.response_format is not None

    def tool_call(self, start: ToolCallStart, arguments: str) -> str | None:
        tool = self.tools.get((start.name, start.namespace))
        if tool is None:
            offered = ", ".join(sorted(name for name, _ in self.tools)) or "none"
            return f"a call to tool {start.name!r}, which the request did not offer (offered: {offered})"
        if tool.kind == "custom":  # free text: there is no JSON to check
            return None
        try:
            value = json.loads(arguments or "{}")
        except ValueError:
            return f"tool {start.name!r} called with arguments that are not JSON: {_shown(arguments)}"
        problem = _schema_problem(tool.input_schema, value)
        return f"tool {start.name!r} called with arguments its schema refuses: {problem}" if problem else None

    def text(self, text: str) -> str | None:
        """The problem of an answer's whole text against the JSON format the request requires."""
        assert self.response_format is not None
        try:
            value = json.loads(text)
        except ValueError:
            return f"the answer is not the JSON the request requires: {_shown(text)}"
        if self.response_format.type == "json_object":
            return None if isinstance(value, dict) else f"the answer is JSON but not an object: {_shown(text)}"
        problem = _schema_problem(self.response_format.schema or {}, value)
        return f"the answer does not match the required JSON schema: {problem}" if problem else None


def unparsed(text: str) -> str:
    return f"a tool call that does not parse: {_shown(text)}"


def _schema_problem(schema: dict, value) -> str | None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:  # the client's schema is not valid itself: nothing to hold the answer to
        return None
    error = next(Draft202012Validator(schema).iter_errors(value), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where + ': ' if where else ''}{error.message}"


def _shown(text: str) -> str:
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "…")
