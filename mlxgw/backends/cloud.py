"""Cloud backends: any OpenAI-compatible server (which may also speak the Responses API), a
Responses-only server, and Anthropic.

A request from a client of a protocol the backend speaks is passed through: the client's JSON with
only the model name changed, and the upstream's bytes relayed as they arrive. Any other request is
translated through the canonical model into the backend's first protocol.
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
from mlxgw.wires import anthropic, openai, responses
from mlxgw.wires.base import UpstreamWire
from mlxgw.wires.fields import is_int, lowest
from mlxgw.wires.responses.upstream import count_body
from mlxgw.wires.sse import SSEEvent

log = logging.getLogger("mlxgw.backends")


_NO_REQUEST = ChatRequest(model="", messages=[])  # headers for calls that carry no client request

# Relayed bytes must be the bytes the client can read: ask upstreams not to compress.
BASE_HEADERS = {"content-type": "application/json", "accept": "application/json", "accept-encoding": "identity"}


class CloudBackend:
    kind: str
    wire: UpstreamWire  # a wire module (mlxgw.wires.*): the one translated requests go out in
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

    def speaks(self) -> list[tuple[UpstreamWire, str]]:
        """The protocols the upstream speaks, each with its chat path; translation uses the first."""
        return [(self.wire, self.chat_path)]

    def _route(self, request: ChatRequest) -> tuple[UpstreamWire, str, bool]:
        """The wire and path `request` goes out in, and whether it passes through."""
        spoken = self.speaks()
        for wire, path in spoken:
            if wire.name == request.protocol:
                return wire, path, request.raw is not None
        wire, path = spoken[0]
        return wire, path, False

    def estimate_input_tokens(self, request: ChatRequest, model: str) -> int | None:
        """An input token count for a stream whose upstream reports the real one only at its end."""
        return None

    def _body(self, request: ChatRequest, model: str, wire: UpstreamWire, passthrough: bool) -> dict:
        options = self._wire_options(wire)
        # No request asks for more output than the backend's or the mapping's ceiling allows.
        options["ceiling"] = lowest(self.upstream.settings.max_output_tokens, request.output_ceiling)
        if passthrough:
            return wire.passthrough_body(request.raw, model, **options)
        return wire.build_request(request, model, **options)

    def _wire_options(self, wire: UpstreamWire) -> dict:
        """Backend settings that shape the request body in `wire`."""
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
        wire, path, passthrough = self._route(request)
        body = json.dumps(self._body(request, model, wire, passthrough), ensure_ascii=False).encode()
        url = self._url(path)
        headers = self.headers(request, passthrough)
        idle_s = self.upstream.settings.policy.idle_timeout_s
        async with self.upstream.post(url, body, headers, wire.error_from_upstream, paced=True) as resp:
            if request.stream and resp.content_type == "application/json":
                # A server that ignores `stream: true` and answers whole: stream its answer ourselves.
                for ev in self._events(wire, await read_body(resp, self.name, idle_s=idle_s)):
                    yield ev
            elif request.stream:
                parser = wire.stream_parser()
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
                events = self._events(wire, raw)
                if passthrough:
                    yield RawFrame(raw, events, whole=True, headers=relayed_headers(resp))
                else:
                    for ev in events:
                        yield ev

    def _events(self, wire: UpstreamWire, raw: bytes) -> list:
        with reading(self.name, self.upstream.key()):
            return wire.events_from_response(_json(raw))

    async def _count(self, path: str, body: dict, headers: dict[str, str], wire: UpstreamWire) -> int:
        """`input_tokens` of what the upstream's counting endpoint at `path` answers for `body`."""
        raw_body = json.dumps(body, ensure_ascii=False).encode()
        async with self.upstream.post(self._url(path), raw_body, headers, wire.error_from_upstream) as resp:
            raw = await read_body(resp, self.name)
        with reading(self.name, self.upstream.key()):
            answer = _json(raw)
            count = answer.get("input_tokens") if isinstance(answer, dict) else None
            if not is_int(count) or count < 0:
                raise UnreadableUpstream("upstream sent a token count that is not a whole number")
            return count


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
    """Any OpenAI-compatible server. With `responses` set (OpenAI's own API by default) it also
    speaks the Responses API: Responses clients pass through to `/responses`, while translated
    requests still go to Chat Completions."""

    kind = "openai"
    wire = openai
    chat_path = "/chat/completions"
    models_path = "/models"

    def speaks(self) -> list[tuple[UpstreamWire, str]]:
        spoken = super().speaks()
        if self.upstream.settings.responses:
            spoken.append((responses, ResponsesBackend.chat_path))
        return spoken

    def headers(self, request: ChatRequest, passthrough: bool) -> dict[str, str]:
        headers = dict(BASE_HEADERS)
        if passthrough:
            headers.update(request.client_headers)  # what the client's wire keeps for its own upstreams
        key = self.upstream.key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def _wire_options(self, wire: UpstreamWire) -> dict:
        return {"token_field": self.upstream.settings.max_tokens_field} if wire is openai else {}

    async def count_tokens(self, request: ChatRequest, model: str) -> int:
        """A request that goes out in the Responses API is counted exactly, at OpenAI's
        `/responses/input_tokens`; Chat Completions has no counting endpoint, so it is estimated."""
        wire, path, passthrough = self._route(request)
        if wire is not responses:
            return self.estimate_input_tokens(request, model)
        body = count_body(self._body(request, model, wire, passthrough))
        return await self._count(path + "/input_tokens", body, self.headers(request, passthrough), wire)

    def estimate_input_tokens(self, request: ChatRequest, model: str) -> int:
        """About four characters a token."""
        body = openai.build_request(request, model)
        text = json.dumps([body["messages"], body.get("tools")], ensure_ascii=False)
        return max(1, len(text) // 4)


class ResponsesBackend(OpenAIBackend):
    """A server that speaks only the Responses API (OpenAI's Responses-only models): every request
    goes to `/responses`, Chat Completions and Anthropic clients' translated."""

    kind = "responses"
    wire = responses
    chat_path = "/responses"

    def speaks(self) -> list[tuple[UpstreamWire, str]]:
        return [(self.wire, self.chat_path)]

    def estimate_input_tokens(self, request: ChatRequest, model: str) -> int:
        """For `response.created`, which carries no usage yet: about four characters a token."""
        body = responses.build_request(request, model)
        text = json.dumps([body.get("instructions"), body["input"], body.get("tools")], ensure_ascii=False)
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
        wire, _, passthrough = self._route(request)
        body = self._body(request, model, wire, passthrough)
        for field in ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata"):
            body.pop(field, None)
        return await self._count("/v1/messages/count_tokens", body, self.headers(request, passthrough), wire)
