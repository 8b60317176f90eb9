"""What both wire protocols share: request validation, turn merging, ids, and the tables that name
the same finish reasons and errors in each protocol."""

from __future__ import annotations

import json
import logging
import math
import secrets
import string
import time
import unicodedata
from collections.abc import Collection, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from mlxgw.canonical import FinishReason, Message, ToolResultPart
from mlxgw.errors import STATUS_BY_KIND, ErrorKind, GatewayError, Unsupported, UpstreamError, kind_for_status

log = logging.getLogger("mlxgw.protocols")

# ---- finish reasons ----------------------------------------------------------------------------

FINISH_TO_OPENAI: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_FROM_OPENAI: dict[str, FinishReason] = {
    "stop": "end_turn",  # OpenAI does not say whether a stop string matched
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
FINISH_FROM_ANTHROPIC: dict[str, FinishReason] = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "pause_turn": "pause_turn",
    "refusal": "refusal",
    "model_context_window_exceeded": "max_tokens",
}

# ---- error types -------------------------------------------------------------------------------

# The error `type` strings of both APIs overlap, so one reverse table reads either protocol's errors.
KIND_BY_ERROR_TYPE: dict[str, ErrorKind] = {
    "invalid_request_error": "invalid_request",
    "authentication_error": "authentication",
    "billing_error": "permission",
    "permission_error": "permission",
    "not_found_error": "not_found",
    "request_too_large": "request_too_large",
    "rate_limit_error": "rate_limit",
    "api_error": "api_error",
    "server_error": "api_error",
    "timeout_error": "timeout",
    "overloaded_error": "overloaded",
}
RETRYABLE_KINDS = {"rate_limit", "api_error", "bad_gateway", "unavailable", "timeout", "overloaded"}
RETRYABLE_STATUSES = {408, 409, 429}


def upstream_error(
    status: int,
    message: str,
    *,
    code: str | None,
    body: bytes,
    headers: Mapping[str, str],
) -> UpstreamError:
    """An UpstreamError for an HTTP error answer, with retry advice taken from status and headers."""
    low = lower_headers(headers)
    retryable = status in RETRYABLE_STATUSES or status >= 500
    should_retry = low.get("x-should-retry", "").strip().lower()
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    kind = kind_for_status(status)
    return UpstreamError(
        kind,
        message,
        status=status,
        retryable=retryable,
        retry_after=retry_after(low),
        code=code,
        body=body,
        headers=low,
    )


def stream_error(error: Any, raw: str) -> UpstreamError:
    """An UpstreamError for an error frame met inside a stream (there is no HTTP status to go by)."""
    if isinstance(error, Mapping):
        kind = KIND_BY_ERROR_TYPE.get(str(error.get("type")), "api_error")
        message = str(error.get("message") or "upstream stream error")
        code = error.get("code") if isinstance(error.get("code"), str) else None
    else:
        kind, message, code = "api_error", str(error or "upstream stream error"), None
    return UpstreamError(
        kind,
        message,
        status=STATUS_BY_KIND[kind],
        retryable=kind in RETRYABLE_KINDS,
        code=code,
        body=raw.encode(),
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if ms := headers.get("retry-after-ms"):
        try:
            if math.isfinite(seconds := float(ms) / 1000):
                return max(0.0, seconds)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def error_body_json(body: bytes) -> dict:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def error_message(status: int, body: bytes, error: Any) -> str:
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str) and error:
        return error
    text = body.decode("utf-8", "replace").strip()
    return text[:500] if text else f"upstream answered HTTP {status}"


# ---- requests ----------------------------------------------------------------------------------


def lower_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers or {}).items()}


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


def merge_turns(messages: list[Message]) -> list[Message]:
    """Drop empty turns and join consecutive turns of the same role (Anthropic needs alternation).

    Within a user turn, tool results go first: Anthropic requires them right after the tool calls.
    """
    merged: list[Message] = []
    for msg in messages:
        if not msg.content:
            continue
        if merged and merged[-1].role == msg.role:
            merged[-1] = Message(msg.role, merged[-1].content + msg.content)
        else:
            merged.append(Message(msg.role, list(msg.content)))
    for msg in merged:
        if msg.role == "user":
            msg.content.sort(key=lambda part: not isinstance(part, ToolResultPart))
    return merged


# ---- ids and JSON ------------------------------------------------------------------------------

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def response_id(source_id: str | None, request_id: str, prefix: str) -> str:
    """Keep the id the source gave; otherwise derive one from the gateway's request id, for tracing."""
    if source_id:
        return source_id
    return prefix + request_id.removeprefix("req_") if request_id else new_id(prefix)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def parse_arguments(arguments: str) -> dict:
    """Tool-call arguments as an object; a model's broken JSON becomes {} rather than a failed turn."""
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        log.debug("tool call arguments are not valid JSON; sending {}: %r", arguments[:200])
        return {}
    return value if isinstance(value, dict) else {}


def parse_data_url(url: str) -> tuple[str, str] | None:
    """(media_type, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    return header.removesuffix(";base64") or "application/octet-stream", data
