"""Anthropic usage objects ↔ canonical `Usage`, and Anthropic's error object."""

from __future__ import annotations

from typing import Any

from mlxgw.canonical import (
    Usage,
)
from mlxgw.errors import (
    GatewayError,
)
from mlxgw.wires.error_map import (
    ERROR_TYPES,
)
from mlxgw.wires.upstream_fields import typed, typed_field


def error_object(err: GatewayError) -> dict:
    kind = "billing_error" if err.status == 402 else ERROR_TYPES[err.kind]["anthropic"]
    return {"type": kind, "message": err.message}


def usage_from_anthropic(usage: Any, where: str = "usage") -> Usage:
    usage = typed(usage, dict, where)
    if usage is None:
        return Usage()

    def count(key: str) -> int | None:
        return typed_field(usage, key, int, where + ".")

    return Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_read_tokens=count("cache_read_input_tokens"),
        cache_write_tokens=count("cache_creation_input_tokens"),
    )


def usage_to_anthropic(usage: Usage) -> dict:
    return {
        "input_tokens": usage.input_tokens or 0,
        "output_tokens": usage.output_tokens or 0,
        "cache_read_input_tokens": usage.cache_read_tokens or 0,
        "cache_creation_input_tokens": usage.cache_write_tokens or 0,
    }
