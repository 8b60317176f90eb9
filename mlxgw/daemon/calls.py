"""A small client of the running daemon's OpenAI API, for `mlxgw chat`.

Plain urllib with the SSE parsed by hand: the CLI imports nothing heavy, and a blocking read is
interrupted by Ctrl-C like any other, which closes the connection and so cancels the generation.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlxgw.daemon.lock import holder, url_for
from mlxgw.errors import MlxgwError
from mlxgw.settings import Settings

TIMEOUT_S = 600.0


@dataclass
class ReplyStats:
    backend: str | None = None  # "backend:model", from the x-mlxgw-backend header
    input_tokens: int | None = None
    output_tokens: int | None = None
    first_token_s: float | None = None
    total_s: float = 0.0
    finish_reason: str | None = None

    @property
    def tokens_per_s(self) -> float | None:
        if not self.output_tokens or self.first_token_s is None:
            return None
        # The first token's wait is prefill (and maybe a model load), not generation speed.
        generating = self.total_s - self.first_token_s
        return self.output_tokens / generating if generating > 0 else None


class Reply:
    """An answer being streamed: iterate for text as it comes; `stats` is complete afterwards.
    `close()` drops the connection, which makes the daemon cancel the generation."""

    def __init__(self, response: Any, started: float) -> None:
        self._response = response
        self._started = started
        self.stats = ReplyStats(backend=response.headers.get("x-mlxgw-backend"))
        self.text = ""

    def __iter__(self) -> Iterator[str]:
        for data in _events(self._response):
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise MlxgwError(f"the daemon sent an unreadable stream frame: {data[:80]!r}") from None
            if "error" in chunk:
                raise MlxgwError(f"the daemon said: {_message(chunk)}")
            usage = chunk.get("usage")
            if usage:
                self.stats.input_tokens = usage.get("prompt_tokens")
                self.stats.output_tokens = usage.get("completion_tokens")
            for choice in chunk.get("choices") or []:
                self.stats.finish_reason = choice.get("finish_reason") or self.stats.finish_reason
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    if self.stats.first_token_s is None:
                        self.stats.first_token_s = time.monotonic() - self._started
                    self.text += piece
                    yield piece
        self.stats.total_s = time.monotonic() - self._started
        self.close()

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> Reply:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaemonClient:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def models(self) -> list[str]:
        body = self.call("GET", "/v1/models")
        return [m["id"] for m in body.get("data") or []]

    def call(self, method: str, path: str) -> Any:
        """One JSON request to the daemon (its admin endpoints too); one-line errors."""
        with self._open(method, path) as response:
            return json.loads(response.read() or b"null")

    def chat(self, model: str, messages: list[dict[str, str]], *, max_tokens: int | None = None) -> Reply:
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        started = time.monotonic()
        return Reply(self._open("POST", "/v1/chat/completions", body), started)

    def _open(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"accept": "text/event-stream" if body is not None else "application/json"}
        data = None if body is None else json.dumps(body).encode()
        if method == "POST":
            # The daemon takes no other POST, bodiless ones (models load/unload) included.
            headers["content-type"] = "application/json"
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            try:
                message = _message(json.loads(exc.read()))
            except ValueError:
                message = f"HTTP {exc.code} {exc.reason}"
            if exc.code == 401:
                message += " (this gateway has client keys: pass --api-key or set MLXGW_API_KEY)"
            raise MlxgwError(f"the daemon said: {message}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            raise MlxgwError(
                f"no mlxgw daemon is answering at {self.url}; start one with `mlxgw start`"
            ) from None


def _message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(body)[:200]


def _events(response: Any) -> Iterator[str]:
    """The `data` of each server-sent event; comments (keep-alive pings) and other fields skipped."""
    lines: list[str] = []
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
    if lines:
        yield "\n".join(lines)


@dataclass
class Conversation:
    """What `mlxgw chat` sends: the system prompt and the exchanges so far.

    Only answered exchanges are history; a question whose answer failed or was cancelled waits in
    `pending`, so `/retry` can ask it again and the next question does not pile up behind it.
    """

    model: str
    system: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    pending: str | None = None

    def request(self, question: str) -> list[dict[str, str]]:
        self.pending = question
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, *self.history, {"role": "user", "content": question}]

    def answered(self, answer: str) -> None:
        if self.pending is not None:
            self.history += [{"role": "user", "content": self.pending}, {"role": "assistant", "content": answer}]
        self.pending = None

    def retry(self) -> str | None:
        """The question to ask again: the pending one, else the last answered one (its answer dropped)."""
        if self.pending is None and len(self.history) >= 2:
            self.pending = self.history[-2]["content"]
            del self.history[-2:]
        return self.pending

    def clear(self) -> None:
        self.history.clear()
        self.pending = None

    def to_json(self) -> dict[str, Any]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return {"model": self.model, "messages": [*head, *self.history]}


# ---- this home's daemon, for the CLI ---------------------------------------------------------


def base_url(settings: Settings) -> str:
    """Where this home's daemon listens: the address it recorded (`--host/--port` may have moved it),
    else the config's."""
    info = holder()
    if info is not None and info.listening:
        return info.url
    return url_for(settings.server.host, settings.server.port)


def call(settings: Settings, method: str, path: str, *, timeout: float = 30.0) -> Any:
    """Call the daemon; one-line errors when it is not running or says no."""
    return DaemonClient(base_url(settings), timeout=timeout).call(method, path)


def running(settings: Settings) -> bool:
    try:
        call(settings, "GET", "/health", timeout=2.0)
    except MlxgwError:
        return False
    return True
