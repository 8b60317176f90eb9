"""The frames the engine sends back to the daemon, coalesced: text goes out at most every FLUSH_S,
several tokens a frame (at a thousand tokens a second, a frame per token costs the pipe and the
daemon more than the decoding); starts, first tokens, finishes and replies go out at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlxgw.canonical import Event
from mlxgw.worker.frames import event_to_wire
from mlxgw.worker.pool import ModelUnavailable

FLUSH_S = 0.015


class Outbox:
    def __init__(self, send: Callable[[list[dict[str, Any]]], None]) -> None:
        self._send = send
        self._frames: list[dict[str, Any]] = []
        self._urgent = False
        self._flushed_at = 0.0

    def events(self, rid: int, events: list[Event], *, urgent: bool = False) -> None:
        self._frames.append({"id": rid, "ev": [event_to_wire(e) for e in events]})
        self._urgent = self._urgent or urgent

    def progress(self, rid: int, done_of_total: list[int]) -> None:
        """A long prompt can take minutes: this tells the daemon the worker is alive (sent with the next batch)."""
        self._frames.append({"id": rid, "progress": done_of_total})

    def reply(self, frame: dict[str, Any]) -> None:
        self._frames.append(frame)
        self._urgent = True

    def error(
        self, rid: int | None, kind: str, message: str, *, code: str | None = None, retryable: bool = False
    ) -> None:
        self.reply({"id": rid, "error": {"kind": kind, "message": message, "code": code, "retryable": retryable}})

    def unavailable(self, rid: int | None, error: ModelUnavailable) -> None:
        self.error(rid, "unavailable", str(error), code="model_unavailable", retryable=True)

    def flush(self, *, busy: bool) -> None:
        """Send what is waiting if it is urgent, if nothing is generating, or if FLUSH_S has passed."""
        now = time.monotonic()
        if self._frames and (self._urgent or not busy or now - self._flushed_at >= FLUSH_S):
            self._send(self._frames)
            self._frames = []
            self._urgent = False
            self._flushed_at = now
