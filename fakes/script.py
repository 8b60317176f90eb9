"""What both fake upstreams share: the scripted reply, the request record and the server shell.

Written from the providers' wire documentation, never from mlxgw's code, so that the fakes
catch the gateway's bugs instead of mirroring them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import socket
import struct
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

# Long enough for any test, short enough that a forgotten hang cannot stall a run forever.
MAX_HANG_S = 120.0
SHUTDOWN_TIMEOUT_S = 2.0


@dataclass
class ToolCall:
    """One tool call the model "makes". `id` None: the fake mints a protocol-looking one."""

    name: str
    arguments: str | dict[str, Any] = "{}"  # a custom tool's call: its raw input
    id: str | None = None
    kind: str = "function"  # Responses only: "custom" for a freeform tool's call
    namespace: str | None = None  # Responses only: the namespace of the called tool

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass
class Thinking:
    text: str
    signature: str | None = None  # None: a deterministic fake signature derived from the text

    @property
    def sig(self) -> str:
        if self.signature is not None:
            return self.signature
        return "EqFakeSig" + hashlib.sha256(self.text.encode()).hexdigest()[:32]


@dataclass
class Usage:
    """Anthropic semantics: `input_tokens` excludes the cached part.

    The OpenAI fake reports prompt_tokens = input + cache_read + cache_creation and
    prompt_tokens_details.cached_tokens = cache_read, as OpenAI does.
    None means "compute the default" (input: `fake_token_count(request)`, output: number of chunks).
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0


@dataclass
class Reply:
    """One scripted answer. Content fields describe what the model said; the rest is misbehaviour.

    A `Reply()` with no content says the fake's default text ("Hello from fake-openai").
    """

    # -- content --
    text: str | list[str] | None = None  # a list gives the stream chunks explicitly
    chunks: int | None = None  # split `text` into this many stream chunks (default: one per word)
    tool_calls: list[ToolCall | tuple] = field(default_factory=list)  # ToolCall or (id, name, args)
    thinking: Thinking | tuple[str, str] | str | None = None
    redacted_thinking: str | None = None  # Anthropic only: the opaque `data`
    arg_chunks: int = 3  # each tool call's arguments JSON is streamed in this many fragments
    interleave: bool = False  # OpenAI streaming: parallel tool calls' fragments alternate by index
    finish: str | None = None  # wire-native finish_reason / stop_reason; None: the right default
    stop_sequence: str | None = None  # Anthropic: the matched stop string (finish -> stop_sequence)
    usage: Usage | dict[str, int] | None = None
    model: str | None = None  # None: echo the request's model
    # -- misbehaviour --
    status: int = 200  # != 200: the protocol's error JSON with this status
    error_type: str | None = None  # override the type the status maps to
    error_message: str | None = None
    error_code: str | None = None  # OpenAI `code` (e.g. "context_length_exceeded")
    error_param: str | None = None  # OpenAI `param`
    prompt_too_long: tuple[int, int] | None = None  # (tokens, maximum): a 400 in the native wording
    retry_after: float | None = None  # seconds, sent as `retry-after`
    retry_after_ms: int | None = None  # sent as `retry-after-ms`
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    delay_s: float = 0.0  # wait before answering at all
    chunk_delay_s: float | None = None  # between stream frames; None: the server's default
    hang: bool = False  # never answer (until the fake closes, then drop the connection)
    hang_after_headers: bool = False  # 200 + SSE headers (stream) / 200 headers, then nothing
    reset: bool = False  # drop the TCP connection (RST) before any response byte
    die_after_chunks: int | None = None  # send N SSE frames (non-stream: half the body), then RST
    malformed: bool = False  # 200 with a body / SSE frame that is not valid JSON
    error_event_after_chunks: int | None = None  # stream: N frames, then an in-stream error frame
    raw: bytes | list[bytes] | None = None  # exactly these bytes: a whole JSON body, or these SSE frames
    linger_s: float = 0.0  # stream: after the last frame, keep the connection open this long before ending it

    @property
    def is_error(self) -> bool:
        return self.status != 200 or self.prompt_too_long is not None

    def tool_call_list(self, id_prefix: str) -> list[ToolCall]:
        out = []
        for i, tc in enumerate(self.tool_calls):
            if isinstance(tc, tuple):
                tc = ToolCall(id=tc[0], name=tc[1], arguments=tc[2])
            if tc.id is None:
                tc = replace(tc, id=f"{id_prefix}{i:02d}{_short_id()}")
            out.append(tc)
        return out

    def thinking_obj(self) -> Thinking | None:
        if self.thinking is None:
            return None
        if isinstance(self.thinking, Thinking):
            return self.thinking
        if isinstance(self.thinking, tuple):
            return Thinking(*self.thinking)
        return Thinking(self.thinking)

    def text_chunks(self, default_text: str) -> list[str]:
        text = self.text
        if text is None:
            has_other = self.tool_calls or self.thinking is not None or self.redacted_thinking
            text = "" if has_other else default_text
        if isinstance(text, list):
            return [t for t in text if t]
        if not text:
            return []
        if self.chunks:
            return split_n(text, self.chunks)
        return re.findall(r"\s*\S+\s*|\s+", text)

    def usage_obj(self) -> Usage:
        if self.usage is None:
            return Usage()
        if isinstance(self.usage, Usage):
            return self.usage
        return Usage(**self.usage)


def split_n(s: str, n: int) -> list[str]:
    """Split `s` into at most n non-empty pieces at arbitrary (not token-aligned) points."""
    n = max(1, min(n, len(s)))
    if not s:
        return []
    size, extra = divmod(len(s), n)
    out, pos = [], 0
    for i in range(n):
        step = size + (1 if i < extra else 0)
        out.append(s[pos : pos + step])
        pos += step
    return out


def fake_token_count(body: Any) -> int:
    """Deterministic stand-in for a tokenizer: about 4 characters a token, at least 1."""
    if not isinstance(body, dict):
        return 1
    parts = [body.get("system"), body.get("messages"), body.get("tools")]
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return max(1, len(blob) // 4)


def _short_id() -> str:
    return uuid.uuid4().hex[:20]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    json: Any  # parsed body, None when empty or not JSON
    disconnected: bool = False  # the client went away before the fake finished answering

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


def refused_url(suffix: str = "") -> str:
    """A base URL on 127.0.0.1 whose port nobody listens on: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{suffix}"


class _Dropped(Exception):
    """Raised inside a handler after it dropped the connection on purpose."""


class FakeUpstream:
    """A real aiohttp server on 127.0.0.1:0 that answers from a FIFO script of `Reply`s.

    Subclasses give the protocol: routes, body shapes, SSE frames, error shapes.
    """

    protocol = ""
    default_text = ""

    def __init__(
        self,
        *replies: Reply,
        require_key: str | None = None,
        chunk_delay_s: float = 0.0,
        models: Iterable[str] = (),
    ) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.side_replies: dict[str, deque[Reply]] = {}
        self.requests: list[RecordedRequest] = []
        self.require_key = require_key
        self.chunk_delay_s = chunk_delay_s
        self.models = list(models) or self.default_models()
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self.port = 0

    # -- scripting --
    def push(self, *replies: Reply, endpoint: str | None = None) -> FakeUpstream:
        """Queue replies for the generation endpoint, or for `endpoint` ("models", "count_tokens").

        Side endpoints honour only the misbehaviour fields of a reply.
        """
        if endpoint is None:
            self.replies.extend(replies)
        else:
            self.side_replies.setdefault(endpoint, deque()).extend(replies)
        return self

    def _next(self, endpoint: str | None = None) -> Reply:
        q = self.replies if endpoint is None else self.side_replies.get(endpoint)
        return q.popleft() if q else Reply()

    # -- lifecycle --
    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:  # overridden per protocol
        return self.root

    async def start(self) -> FakeUpstream:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.add_routes(app)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._closing = asyncio.Event()
        # handler_cancellation: a client that goes away cancels the handler, which we record.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is None:
            return
        assert self._closing is not None
        self._closing.set()  # hanging handlers drop their connections now
        await asyncio.sleep(0)
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> FakeUpstream:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait (bounded) until at least n requests have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.protocol} fake got {len(self.requests)} requests, wanted {n}")
            await asyncio.sleep(0.01)
        return self.requests

    # -- protocol hooks --
    def default_models(self) -> list[str]:
        raise NotImplementedError

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def error_body(self, status: int, reply: Reply, request_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def id_headers(self, request_id: str) -> dict[str, str]:
        raise NotImplementedError

    def key_ok(self, rec: RecordedRequest) -> bool:
        raise NotImplementedError

    # -- shared machinery --
    async def _record(self, request: web.Request) -> RecordedRequest:
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            json=parsed,
        )
        self.requests.append(rec)
        return rec

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        reply = Reply(status=404, error_message=f"Unknown path {request.method} {request.path}")
        return self._error_response(reply, rec)

    def _request_id(self) -> str:
        return "req_" + _short_id()

    def _error_response(self, reply: Reply, rec: RecordedRequest) -> web.Response:
        status = 400 if reply.prompt_too_long and reply.status == 200 else reply.status
        rid = self._request_id()
        headers = {**self.id_headers(rid), **self._rate_headers(reply), **reply.headers}
        return web.json_response(self.error_body(status, reply, rid), status=status, headers=headers)

    @staticmethod
    def _rate_headers(reply: Reply) -> dict[str, str]:
        h = {}
        if reply.retry_after is not None:
            ra = reply.retry_after
            h["retry-after"] = str(int(ra)) if float(ra).is_integer() else str(ra)
        if reply.retry_after_ms is not None:
            h["retry-after-ms"] = str(reply.retry_after_ms)
        return h

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the fake closes."""
        if seconds <= 0:
            return
        assert self._closing is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _hang(self, request: web.Request) -> None:
        await self._sleep(MAX_HANG_S)
        self._drop(request)

    @staticmethod
    def _drop(request: web.Request) -> None:
        """Abort the TCP connection with an RST, no graceful close."""
        transport = request.transport
        if transport is None:
            raise _Dropped
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        raise _Dropped

    async def _serve(self, request: web.Request, endpoint: str | None, answer) -> web.StreamResponse:
        """Record, check the key, apply the reply's misbehaviour, then let `answer` respond."""
        rec = await self._record(request)
        try:
            if self.require_key is not None and not self.key_ok(rec):
                return self._error_response(Reply(status=401), rec)
            reply = self._next(endpoint)
            await self._sleep(reply.delay_s)
            if reply.reset:
                self._drop(request)
            if reply.hang:
                await self._hang(request)
            if reply.is_error:
                return self._error_response(reply, rec)
            if isinstance(reply.raw, bytes):
                return web.Response(body=reply.raw, status=200, content_type="application/json")
            if reply.raw is not None:
                return await self._send_sse(request, reply, reply.raw, b"")
            return await answer(request, rec, reply)
        except _Dropped:
            # The connection is gone; give aiohttp a response it will fail to write, quietly.
            return web.Response(status=500)
        except asyncio.CancelledError:
            rec.disconnected = True
            raise

    async def _send_json(
        self, request: web.Request, reply: Reply, body: dict[str, Any]
    ) -> web.StreamResponse:
        rid = self._request_id()
        headers = {**self.id_headers(rid), **reply.headers}
        raw = json.dumps(body).encode()
        if reply.malformed:
            raw = raw[: max(1, len(raw) // 2)] + b"<<not json"
        if reply.hang_after_headers or reply.die_after_chunks is not None:
            resp = web.StreamResponse(status=200, headers={**headers, "Content-Type": "application/json"})
            resp.content_length = len(raw)
            await resp.prepare(request)
            if reply.hang_after_headers:
                await self._hang(request)
            await resp.write(raw[: len(raw) // 2])
            self._drop(request)
        return web.Response(body=raw, status=200, headers=headers, content_type="application/json")

    async def _send_sse(self, request: web.Request, reply: Reply, frames: list[bytes], error_frame: bytes):
        """Stream pre-rendered SSE frames, applying the stream misbehaviours."""
        rid = self._request_id()
        headers = {
            **self.id_headers(rid),
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            **reply.headers,
        }
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(request)
        if reply.hang_after_headers:
            await self._hang(request)
        delay = self.chunk_delay_s if reply.chunk_delay_s is None else reply.chunk_delay_s
        last = len(frames) - 1  # the terminating frame is never sent by a broken stream
        die_at = None if reply.die_after_chunks is None else min(reply.die_after_chunks, last)
        err_at = None if reply.error_event_after_chunks is None else min(reply.error_event_after_chunks, last)
        for i, frame in enumerate(frames):
            if i == die_at:
                self._drop(request)
            if i == err_at:
                await resp.write(error_frame)
                break
            if reply.malformed and i == len(frames) // 2:
                frame = self.malformed_frame()
            if i and delay:
                await self._sleep(delay)
            await resp.write(frame)
        await self._sleep(reply.linger_s)
        await resp.write_eof()
        return resp

    def malformed_frame(self) -> bytes:
        raise NotImplementedError
