"""HTTP plumbing shared by the cloud backends: one request to an upstream, with timeouts and
errors turned into `UpstreamError`s, and an SSE reader that keeps each frame's raw bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aiohttp

from mlxgw.backends.base import ANSWER_TIMEOUT
from mlxgw.errors import UpstreamError
from mlxgw.settings import BackendSettings
from mlxgw.wires.sse import SSEDecoder, SSEEvent

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

    def _timeout(self, paced: bool) -> aiohttp.ClientTimeout:
        p = self.settings.policy
        # aiohttp's sock_read also runs while the headers are awaited, which for a whole answer is
        # the whole generation: a paced request leaves it off (see `post`).
        return aiohttp.ClientTimeout(
            total=None, connect=p.connect_timeout_s, sock_connect=p.connect_timeout_s, sock_read=None if paced else p.idle_timeout_s
        )

    def get(
        self, url: str, headers: dict[str, str], error: Callable[[int, bytes, dict], UpstreamError]
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        return self.post(url, None, headers, error, method="GET")

    @asynccontextmanager
    async def post(
        self,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        error: Callable[[int, bytes, dict], UpstreamError],
        *,
        method: str = "POST",
        paced: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send and yield the response once its headers arrived with a 2xx status.

        Connection failures and timeouts become retryable `UpstreamError`s; a non-2xx status becomes
        what `error(status, body, headers)` makes of it. Only the connection is timed for a `paced`
        request (a generation): the dispatcher bounds its waits, and `read_body` its body.
        """
        policy = self.settings.policy
        try:
            async with asyncio.timeout(None if paced else policy.first_byte_timeout_s + policy.connect_timeout_s):
                response = await self.session.request(method, url, data=body, headers=headers, timeout=self._timeout(paced))
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


async def read_body(response: aiohttp.ClientResponse, backend: str, *, idle_s: float | None = None) -> bytes:
    """The whole body. A paced request's body is read here with `idle_s` as the longest silence: its
    answer was generated, so one cut off is not asked for again from the same backend."""
    try:
        if idle_s is None:
            return await response.read()
        parts = []
        while True:
            async with asyncio.timeout(idle_s):
                part = await response.content.readany()
            if not part:
                return b"".join(parts)
            parts.append(part)
    except TimeoutError:
        raise UpstreamError(
            "timeout", f"backend {backend} timed out: it went silent mid-answer", backend=backend, retryable=True,
            code=ANSWER_TIMEOUT if idle_s is not None else None,
        ) from None
    except aiohttp.ClientError as exc:
        raise UpstreamError("bad_gateway", f"backend {backend} broke off: {describe(exc)}", backend=backend, retryable=True) from None


async def sse_frames(response: aiohttp.ClientResponse, backend: str) -> AsyncIterator[list[SSEEvent]]:
    """Yield, for each read from the upstream, its complete SSE events (with their raw bytes, so a
    relay reproduces the stream and writes one read's frames with one send)."""
    decoder = SSEDecoder()
    try:
        # No read timeout here: the dispatcher bounds the silence between the events of a stream.
        async for chunk in response.content.iter_any():
            if events := decoder.feed(chunk):
                yield events
    except aiohttp.ClientError as exc:
        raise UpstreamError("bad_gateway", f"backend {backend} stream broke off: {describe(exc)}", backend=backend, retryable=True) from None
    if events := decoder.flush():
        yield events
