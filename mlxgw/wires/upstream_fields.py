"""Typed reads of an upstream's JSON. Absent or null reads as None; any other value of the wrong type
makes the answer one mlxgw cannot read, raised here rather than as a TypeError somewhere later."""

from __future__ import annotations

from typing import Any

from mlxgw.errors import UnreadableUpstream

_EXPECTED = {str: "a string", int: "an integer", dict: "an object", list: "an array"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def typed(value: Any, kind: type, where: str) -> Any:
    """`value` if it is a `kind` (or None); `where` names it in the error, e.g. `choices[0].delta`."""
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UnreadableUpstream(f"upstream sent `{where}` as {_json_type(value)}, not {_EXPECTED[kind]}")
    return value


def typed_field(obj: dict, key: str, kind: type, where: str = "") -> Any:
    """`obj[key]` if it is a `kind`, None when absent or null. `where` is the path to `obj`, e.g. `delta.`."""
    return typed(obj.get(key), kind, where + key)
