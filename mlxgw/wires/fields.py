"""Reading the fields of a client's request: each one the gateway reads or forwards must have the
right type, or the request is a 400 naming it."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection
from typing import Any

from mlxgw.errors import GatewayError, Unsupported


def invalid(message: str, param: str | None = None) -> GatewayError:
    return GatewayError("invalid_request", message, param=param)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def require_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    return body


# The model name travels in response headers (x-mlxgw-backend) and log lines: it must fit in one.
MAX_MODEL_NAME = 1024


def require_model(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("`model` is required and must be a non-empty string", "model")
    if len(model) > MAX_MODEL_NAME:
        raise invalid(f"`model` must be at most {MAX_MODEL_NAME} characters", "model")
    if any(unicodedata.category(ch) == "Cc" for ch in model):
        raise invalid("`model` must not contain control characters (line breaks, tabs, escapes)", "model")
    return model


def require_messages(body: dict) -> list:
    messages = body.get("messages")
    if messages is None:
        raise invalid("`messages` is required", "messages")
    if not isinstance(messages, list):
        raise invalid("`messages` must be an array", "messages")
    return messages


def opt_int(body: dict, key: str, *, positive: bool = False) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not is_int(value) or (positive and value < 1):
        raise invalid(f"`{key}` must be a {'positive ' if positive else ''}integer", key)
    return value


def opt_number(body: dict, key: str, low: float | None = None, high: float | None = None) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if not is_number(value):
        raise invalid(f"`{key}` must be a number", key)
    if (low is not None and value < low) or (high is not None and value > high):
        raise invalid(f"`{key}` must be between {low} and {high}", key)
    return value


def opt_bool(body: dict, key: str, param: str | None = None) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(f"`{param or key}` must be a boolean", param or key)
    return value


def opt_str(body: dict, key: str, param: str | None = None) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"`{param or key}` must be a string", param or key)
    return value


def opt_object(body: dict, key: str, param: str | None = None) -> dict | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"`{param or key}` must be an object", param or key)
    return value


def opt_choice(body: dict, key: str, choices: Collection[str], param: str | None = None) -> str | None:
    """A string field that must be one of `choices`; any other value or type is a 400 naming it."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value not in choices:
        raise invalid(f"`{param or key}` must be one of {', '.join(choices)}", param or key)
    return value


def capped(value: int | None, ceiling: int | None) -> int | None:
    """A max-tokens value lowered to a backend's or mapping's ceiling; without one asked, the ceiling."""
    if ceiling is None:
        return value
    return ceiling if value is None else min(value, ceiling)


def lowest(*ceilings: int | None) -> int | None:
    known = [c for c in ceilings if c is not None]
    return min(known) if known else None


def cannot(param: str, message: str) -> Unsupported:
    """A field the target backend cannot honour: refused by name, never silently dropped (the chain
    may still have a backend that can)."""
    return Unsupported(param, f"`{param}`: {message}")


def str_list(value: Any, param: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise invalid(f"`{param}` must be a string or an array of strings", param)
    return list(value)
