"""HTTP plumbing shared by the cloud backends: one request to an upstream, with timeouts and
errors turned into `UpstreamError`s, and an SSE reader that keeps each frame's raw bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp

from mlxgw.config import BackendSettings
from mlxgw.errors import UpstreamError

# Upstream response headers a passthrough client may care about.
RELAYED_HEADERS = ("retry-after", "retry-after-ms", "anthropic-ratelimit-requests-remaining", "x-ratelimit-remaining-requests")


class Upstream:
    """One configured cloud backend's HTTP side."""

    def __init__(self, settings: BackendSettings, session: aiohttp.ClientSession, key: Callable[[], str | None]) -> None:
        self.settings = settings
        self.session = session
        self.key = key

    @property
    def name(self) -> str:
        return self.settings.name

    def _timeout(self) -> aiohttp.ClientTimeout:
        p = self.settings.policy
        return aiohttp.ClientTimeout(total=None, connect=p.connect_timeout_s, sock_connect=p.connect_timeout_s, sock_read=p.idle_timeout_s)

    @asynccontextmanager
    async def post(
        self, url: str, body: bytes, headers: dict[str, str], error: Callable[[int, bytes, dict], UpstreamError]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST and yield the response once its headers arrived with a 2xx status.

        Connection failures and timeouts become retryable `UpstreamError`s; a non-2xx status becomes
        what `error(status, body, headers)` makes of it.
        """
        policy = self.settings.policy
        try:
            async with asyncio.timeout(policy.first_byte_timeout_s + policy.connect_timeout_s):
                response = await self.session.post(url, data=body, headers=headers, timeout=self._timeout())
        except TimeoutError:
            raise UpstreamError("timeout", f"backend {self.name} did not answer in time", backend=self.name, retryable=True) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                "bad_gateway", f"backend {self.name} unreachable: {describe(exc)}", backend=self.name, retryable=True
            ) from None
        try:
            if response.status >= 300:
                try:
                    raw = await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    raw = b""
                err = error(response.status, _redact(raw, self.key()), dict(response.headers))
                err.backend = self.name
                raise err
            yield response
        finally:
            response.release()


def _redact(body: bytes, key: str | None) -> bytes:
    """An upstream error body without our key: some servers echo the key they rejected, and the
    body's message reaches the client and the daemon's log."""
    if not key:
        return body
    return body.replace(key.encode(), b"[redacted]")


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def relayed_headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    return {k: v for k in RELAYED_HEADERS if (v := response.headers.get(k)) is not None}


async def read_body(response: aiohttp.ClientResponse, backend: str) -> bytes:
    try:
        return await response.read()
    except TimeoutError:
        raise UpstreamError("timeout", f"backend {backend} timed out: it went silent mid-answer", backend=backend, retryable=True) from None
    except aiohttp.ClientError as exc:
        raise UpstreamError("bad_gateway", f"backend {backend} broke off: {describe(exc)}", backend=backend, retryable=True) from None


async def sse_frames(
    response: aiohttp.ClientResponse, backend: str
) -> AsyncIterator[list[tuple[bytes, str | None, str]]]:
    """Yield, for each read from the upstream, its complete SSE frames as (raw bytes, event, data).

    The raw bytes include each frame's blank-line terminator, so relaying them reproduces the
    stream; grouping frames by read lets a relay write them with one send. Comment-only frames come
    with data "" so a relay passes keep-alives through.
    """
    buffer = b""
    try:
        async for chunk in response.content.iter_any():
            buffer += chunk
            frames = []
            while (end := _frame_end(buffer))[0] >= 0:
                cut = end[0] + end[1]
                raw, buffer = buffer[:cut], buffer[cut:]
                frames.append((raw, *_parse_frame(raw[: end[0]])))
            if frames:
                yield frames
    except TimeoutError:
        raise UpstreamError("timeout", f"backend {backend} timed out: its stream went silent", backend=backend, retryable=True) from None
    except aiohttp.ClientError as exc:
        raise UpstreamError("bad_gateway", f"backend {backend} stream broke off: {describe(exc)}", backend=backend, retryable=True) from None
    if buffer.strip():
        yield [(buffer, *_parse_frame(buffer))]


def _frame_end(buffer: bytes) -> tuple[int, int]:
    """Where the first frame ends, and the separator's length; (-1, 0) when no frame is complete."""
    end = buffer.find(b"\n\n")
    if b"\r" not in buffer:  # the usual case: plain newlines, one search
        return (end, 2) if end >= 0 else (-1, 0)
    candidates = [(i, len(sep)) for sep in (b"\n\n", b"\r\n\r\n", b"\r\r") if (i := buffer.find(sep)) >= 0]
    return min(candidates) if candidates else (-1, 0)


def _parse_frame(raw: bytes) -> tuple[str | None, str]:
    event = None
    data: list[str] = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    return event, "\n".join(data)
