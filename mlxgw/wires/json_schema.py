"""JSON schemas for structured output, made acceptable to each provider.

Anthropic's structured outputs take a subset of JSON Schema: every object closed
(`additionalProperties: false`), no length, range or pattern keywords. As Anthropic's own SDK does,
such keywords move into the node's description, where the model still reads them. OpenAI's strict
mode wants every object closed with all of its properties required; a schema that is not so is sent
non-strict rather than refused.
"""

from __future__ import annotations

from typing import Any

# What Anthropic accepts on a schema node; anything else is described instead.
_KEPT = {"type", "description", "title", "enum", "const", "anyOf", "allOf", "$ref", "properties", "required", "items"}
_DEFINITIONS = ("$defs", "definitions")
_STRING_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}


def for_anthropic(schema: Any) -> Any:
    """A copy of `schema` in the subset Anthropic's `output_config.format` accepts."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    described: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", *_DEFINITIONS) and isinstance(value, dict):
            out[key] = {name: for_anthropic(sub) for name, sub in value.items()}
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            out["allOf" if key == "allOf" else "anyOf"] = [for_anthropic(sub) for sub in value]
        elif key == "items":
            out[key] = for_anthropic(value)
        elif key in ("additionalProperties", "$schema"):
            continue  # objects are closed below, whatever the client said: Anthropic accepts nothing else
        elif key in _KEPT or _kept_value(key, value):
            out[key] = value
        else:
            described[key] = value
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
    if described:
        note = "{" + ", ".join(f"{key}: {value}" for key, value in described.items()) + "}"
        text = out.get("description")
        out["description"] = f"{text}\n\n{note}" if isinstance(text, str) and text else note
    return out


def _kept_value(key: str, value: Any) -> bool:
    """Keywords Anthropic takes with some values only."""
    if key == "format":
        return isinstance(value, str) and value in _STRING_FORMATS
    return key == "minItems" and type(value) is int and value in (0, 1)


def strict_for_openai(schema: Any) -> bool:
    """Whether `schema` meets OpenAI's strict mode: every object closed, every property required."""
    if not isinstance(schema, dict):
        return True
    properties = schema.get("properties")
    if schema.get("type") == "object" or properties is not None:
        required = schema.get("required")
        if (
            not isinstance(properties, dict)
            or schema.get("additionalProperties") is not False
            or not isinstance(required, list)
            or not all(isinstance(name, str) for name in required)
            or set(required) != set(properties)
        ):
            return False
    return all(strict_for_openai(sub) for sub in _children(schema))


def _children(schema: dict) -> list:
    children: list = []
    for key in ("properties", *_DEFINITIONS):
        if isinstance(schema.get(key), dict):
            children += schema[key].values()
    for key in ("anyOf", "oneOf", "allOf", "items"):
        value = schema.get(key)
        children += value if isinstance(value, list) else [value]
    return children
