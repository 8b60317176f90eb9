"""Errors across the wires: one table naming each error kind in every protocol, and reading an
upstream's error answers (status, type, retry advice) into `UpstreamError`s."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from mlxgw.errors import STATUS_BY_KIND, ErrorKind, UpstreamError, kind_for_status
from mlxgw.wires.common import lower_headers

# Each error kind as each protocol names it (OpenAI, Anthropic). OpenAI itself says
# invalid_request_error for 404s (code model_not_found). 502 and 503 have no type of their own: a
# bad upstream answer is an api_error; "no backend can take this now" is overloaded_error, which
# tells clients to come back later (both SDKs retry both).
ERROR_TYPES: dict[str, dict[str, str]] = {
    kind: {"openai": openai_type, "anthropic": anthropic_type}
    for kind, openai_type, anthropic_type in (
        ("invalid_request", "invalid_request_error", "invalid_request_error"),
        ("authentication", "authentication_error", "authentication_error"),
        ("permission", "permission_error", "permission_error"),
        ("not_found", "invalid_request_error", "not_found_error"),
        ("request_too_large", "request_too_large", "request_too_large"),
        ("rate_limit", "rate_limit_error", "rate_limit_error"),
        ("api_error", "api_error", "api_error"),
        ("bad_gateway", "api_error", "api_error"),
        ("unavailable", "overloaded_error", "overloaded_error"),
        ("timeout", "timeout_error", "timeout_error"),
        ("overloaded", "overloaded_error", "overloaded_error"),
    )
}


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
