"""Cloud backends: any OpenAI-compatible server, and Anthropic.

A request from a client of the backend's own protocol is passed through: the client's JSON with
only the model name changed, and the upstream's bytes relayed as they arrive. Any other request is
translated through the canonical model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from mlxgw.backends.base import Item, RawFrame
from mlxgw.backends.http import Upstream, read_body, relayed_headers, sse_frames
from mlxgw.canonical import ChatRequest, Progress, Start
from mlxgw.errors import UnreadableUpstream, UpstreamError
from mlxgw.wires import anthropic, openai
from mlxgw.wires.base import UpstreamWire
from mlxgw.wires.fields import is_int, lowest
from mlxgw.wires.sse import SSEEvent

log = logging.getLogger("mlxgw.backends")


_NO_REQUEST = ChatRequest(model="", messages=[])  # headers for calls that carry no client request

# Relayed bytes must be the bytes the client can read: ask upstreams not to compress.
BASE_HEADERS = {"content-type": "application/json", "accept": "application/json", "accept-encoding": "identity"}


class CloudBackend:
    kind: str
    wire: UpstreamWire  # a wire module (mlxgw.wires.*)
    chat_path: str

    def __init__(self, upstream: Upstream, *, anthropic_version: str = "2023-06-01") -> None:
        self.upstream = upstream
        self.name = upstream.name
        self.anthropic_version = anthropic_version

    def headers(self, request: ChatRequest, passthrough: bool) -> dict[str, str]:
        raise NotImplementedError

    async def close(self) -> None:
        """The HTTP session is the app's; nothing of our own to close."""

    def _url(self, path: str) -> str:
        return self.upstream.settings.base_url + path

    def _passthrough(self, request: ChatRequest) -> bool:
        return request.protocol == self.kind and request.raw is not None

    def estimate_input_tokens(self, request: ChatRequest, model: str) -> int | None:
        """An input token count for a stream whose upstream reports the real one only at its end."""
        return None

    def _body(self, request: ChatRequest, model: str, passthrough: bool) -> dict:
        options = self._wire_options()
        # No request asks for more output than the backend's or the mapping's ceiling allows.
        options["ceiling"] = lowest(self.upstream.settings.max_output_tokens, request.output_ceiling)
        if passthrough:
            return self.wire.passthrough_body(request.raw, model, **options)
        return self.wire.build_request(request, model, **options)

    def _wire_options(self) -> dict:
        """Backend settings that shape the request body."""
        return {}

    models_path: str

    async def list_models(self) -> list[str]:
        """The model ids the upstream offers (its /models list)."""
        async with self.upstream.get(self._url(self.models_path), self.headers(_NO_REQUEST, False), self.wire.error_from_upstream) as resp:
            raw = await read_body(resp, self.name)
        with reading(self.name, self.upstream.key()):
            listing = _json(raw)
            models = listing.get("data") if isinstance(listing, dict) else None
            if not isinstance(models, list):
                raise UnreadableUpstream("upstream sent a model list without a `data` array")
            return [str(m["id"]) for m in models if isinstance(m, dict) and "id" in m]

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Item]:
        passthrough = self._passthrough(request)
        body = json.dumps(self._body(request, model, passthrough), ensure_ascii=False).encode()
        url = self._url(self.chat_path)
        headers = self.headers(request, passthrough)
        idle_s = self.upstream.settings.policy.idle_timeout_s
        async with self.upstream.post(url, body, headers, self.wire.error_from_upstream, paced=True) as resp:
            if request.stream and resp.content_type == "application/json":
                # A server that ignores `stream: true` and answers whole: stream its answer ourselves.
                for ev in self._events(await read_body(resp, self.name, idle_s=idle_s)):
                    yield ev
            elif request.stream:
                parser = self.wire.stream_parser()
                async for frames in sse_frames(resp, self.name):
                    raws, events, failure = _read_frames(self.name, self.upstream.key(), parser, frames)
                    if passthrough:
                        if raws:
                            yield RawFrame(raws, events)
                    else:
                        if not events:
                            yield Progress()  # a ping or a keep-alive comment: alive, nothing to say yet
                        for ev in events:
                            if isinstance(ev, Start) and ev.input_tokens is None:
                                # Anthropic clients read input tokens from message_start and zeros break
                                # some (Claude Code); the real count still follows in the final usage.
                                ev.input_tokens = self.estimate_input_tokens(request, model)
                            yield ev
                    if failure is not None:
                        raise failure
                    if parser.done:
                        # The answer is whole: an upstream slow to close must not hold it back (or
                        # time it out into an error after its end).
                        break
                tail = parser.end()  # an OpenAI Finish held back for a usage chunk that never came
                if tail:
                    if passthrough:
                        yield RawFrame(b"", tail)
                    else:
                        for ev in tail:
                            yield ev
                if not parser.finished:
                    raise UpstreamError("bad_gateway", f"backend {self.name} ended its stream early", backend=self.name, retryable=True)
            else:
                raw = await read_body(resp, self.name, idle_s=idle_s)
                events = self._events(raw)
                if passthrough:
                    yield RawFrame(raw, events, whole=True, headers=relayed_headers(resp))
                else:
                    for ev in events:
                        yield ev

    def _events(self, raw: bytes) -> list:
        with reading(self.name, self.upstream.key()):
            return self.wire.events_from_response(_json(raw))


@contextmanager
def reading(backend: str, key: str | None) -> Iterator[None]:
    """Around every read of an upstream's data: what mlxgw cannot read is a bad gateway that another
    try or another backend may mend, never an exception that escapes as a 500 or a broken stream.
    The backend's `key` is masked in what reaches the client, as in an HTTP error's body."""
    try:
        yield
    except UnreadableUpstream as exc:
        message = _redact(exc.message, key)
        raise UpstreamError("bad_gateway", f"backend {backend}: {message}", backend=backend, retryable=True) from None
    except UpstreamError as exc:  # an error the upstream itself reported inside its answer
        exc.backend = exc.backend or backend
        exc.message = _redact(exc.message, key)
        exc.args = (exc.message,)
        raise
    except Exception as exc:
        log.warning("backend %s sent data mlxgw cannot read", backend, exc_info=True)
        raise UpstreamError(
            "bad_gateway", f"backend {backend} sent data mlxgw cannot read ({type(exc).__name__})", backend=backend, retryable=True
        ) from None


def _redact(text: str, key: str | None) -> str:
    return text.replace(key, "[redacted]") if key else text


def _json(raw: bytes | str):
    try:
        return json.loads(raw)
    except ValueError:
        raise UnreadableUpstream("upstream sent a body that is not JSON") from None


def _read_frames(
    backend: str, key: str | None, parser, frames: list[SSEEvent]
) -> tuple[bytes, list, UpstreamError | None]:
    """Parse one read's frames in order. Every frame is read, relayed ones too: a frame mlxgw
    cannot read, like an error frame, stops there, keeping what came before it."""
    raws: list[bytes] = []
    events: list = []
    for frame in frames:
        raw = frame.raw
        try:
            if frame.data:
                with reading(backend, key):
                    events.extend(parser.feed(frame.event, frame.data))
        except UpstreamError as exc:
            return b"".join(raws), events, exc
        raws.append(raw)
    return b"".join(raws), events, None


class OpenAIBackend(CloudBackend):
    kind = "openai"
    wire = openai
    chat_path = "/chat/completions"
    models_path = "/models"

    def headers(self, request: ChatRequest, passthrough: bool) -> dict[str, str]:
        headers = dict(BASE_HEADERS)
        key = self.upstream.key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def _wire_options(self) -> dict:
        return {"token_field": self.upstream.settings.max_tokens_field}

    async def count_tokens(self, request: ChatRequest, model: str) -> int:
        return self.estimate_input_tokens(request, model)

    def estimate_input_tokens(self, request: ChatRequest, model: str) -> int:
        """OpenAI has no counting endpoint: an estimate of about four characters a token."""
        body = openai.build_request(request, model)
        text = json.dumps([body["messages"], body.get("tools")], ensure_ascii=False)
        return max(1, len(text) // 4)


class AnthropicBackend(CloudBackend):
    kind = "anthropic"
    wire = anthropic
    chat_path = "/v1/messages"
    models_path = "/v1/models?limit=1000"

    def headers(self, request: ChatRequest, passthrough: bool) -> dict[str, str]:
        headers = dict(BASE_HEADERS)
        if passthrough:
            headers.update({k: v for k, v in request.client_headers.items() if k in anthropic.FORWARDED_HEADERS})
        headers.setdefault("anthropic-version", self.anthropic_version)
        key = self.upstream.key()
        if key:
            headers["x-api-key"] = key
        return headers

    async def count_tokens(self, request: ChatRequest, model: str) -> int:
        passthrough = self._passthrough(request)
        body = self._body(request, model, passthrough)
        for field in ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata"):
            body.pop(field, None)
        url = self._url("/v1/messages/count_tokens")
        raw_body = json.dumps(body, ensure_ascii=False).encode()
        async with self.upstream.post(url, raw_body, self.headers(request, passthrough), self.wire.error_from_upstream) as resp:
            raw = await read_body(resp, self.name)
        with reading(self.name, self.upstream.key()):
            body = _json(raw)
            count = body.get("input_tokens") if isinstance(body, dict) else None
            if not is_int(count) or count < 0:
                raise UnreadableUpstream("upstream sent a token count that is not a whole number")
            return count
