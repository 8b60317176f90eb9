"""One exception family. The CLI prints `str(error)` on one line; the server renders `GatewayError`s
in the client's own protocol (see each wire's render_error in mlxgw.wires)."""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal[
    "invalid_request",  # 400
    "authentication",  # 401
    "permission",  # 403
    "not_found",  # 404
    "request_too_large",  # 413
    "rate_limit",  # 429
    "api_error",  # 500
    "bad_gateway",  # 502
    "unavailable",  # 503
    "timeout",  # 504
    "overloaded",  # 529
]

STATUS_BY_KIND: dict[str, int] = {
    "invalid_request": 400,
    "authentication": 401,
    "permission": 403,
    "not_found": 404,
    "request_too_large": 413,
    "rate_limit": 429,
    "api_error": 500,
    "bad_gateway": 502,
    "unavailable": 503,
    "timeout": 504,
    "overloaded": 529,
}


def kind_for_status(status: int) -> ErrorKind:
    for kind, code in STATUS_BY_KIND.items():
        if code == status:
            return kind  # type: ignore[return-value]
    if status == 422:
        return "invalid_request"
    if 400 <= status < 500:
        return "invalid_request"
    return "api_error"


BAD_OUTPUT = "bad_output"  # the code (and fallback_on reason) of a `BadOutput`


class MlxgwError(Exception):
    """An error whose message is meant for the user, as is."""


class ConfigError(MlxgwError):
    """A config problem. `reason` is the message without the file and line it points at."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class CredentialError(MlxgwError):
    pass


class GatewayError(MlxgwError):
    """An error answered to an API client, with a status and a protocol-neutral kind.

    `param` names the offending request field where one is to blame (OpenAI's `error.param`).
    `code` is a finer machine-readable reason, e.g. "context_length_exceeded" or "model_not_found".
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status or STATUS_BY_KIND[kind]
        self.param = param
        self.code = code


class Unsupported(GatewayError):
    """The backend an attempt would use cannot honour a field of the request (a 400 naming it): the
    dispatcher moves on to the next backend of the chain, and answers this only if none can."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__("invalid_request", message, param=param, code="unsupported_by_backend")


class OverLimit(GatewayError):
    """A client key over one of its limits (rpm, tpm, a budget): 429 with a `Retry-After` of the
    seconds until the limit frees. `code` says which: rate_limit_exceeded or budget_exceeded."""

    def __init__(self, message: str, *, retry_after: float, code: str) -> None:
        super().__init__("rate_limit", message, code=code)
        self.retry_after = retry_after


class UpstreamError(GatewayError):
    """A backend failed. `retryable` says whether another try or another backend may succeed."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        backend: str = "",
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        code: str | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(kind, message, status=status, code=code)
        self.backend = backend
        self.retryable = retryable
        self.retry_after = retry_after
        self.body = body  # the upstream's own error body, relayed as-is in passthrough
        self.headers = headers or {}


class BadOutput(UpstreamError):
    """A local answer that breaks what the request asked of it: a tool call that does not parse,
    names a tool not offered or fails the tool's schema, or text that is not the JSON required.
    Not retried on the same backend; a mapping with fallback_on = ["bad_output"] moves on."""

    def __init__(self, backend: str, message: str) -> None:
        super().__init__("bad_gateway", f"backend {backend} gave a bad answer: {message}", backend=backend, code=BAD_OUTPUT)


class UnreadableUpstream(UpstreamError):
    """An upstream answer mlxgw cannot read (not JSON, or a field of the wrong type): a bad gateway
    that another try or another backend may mend."""

    def __init__(self, message: str) -> None:
        super().__init__("bad_gateway", message, retryable=True)
