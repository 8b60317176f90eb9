"""Server-sent events: an incremental decoder for upstream streams and a frame encoder for ours."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SSEEvent:
    """One event. `raw` holds its bytes as they came, blank line included, for relaying untouched.

    A frame of comments only (a keep-alive) comes as an event with data "": nothing to parse, but a
    relay still passes it on.
    """

    event: str | None
    data: str
    raw: bytes = field(default=b"", compare=False, repr=False)


class SSEDecoder:
    """Feed bytes as they arrive, split anywhere; get back each complete event once its blank line came.

    Lines may end in `\\n`, `\\r\\n` or `\\r`. Comment lines (`: ...`), `id:` and `retry:` are ignored.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []
        self._raw = bytearray()  # the current event's bytes so far
        self._first = True

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk
        events: list[SSEEvent] = []
        start = 0
        while cut := _line_end(buffer, start):
            end, after = cut
            self._raw += buffer[start:after]
            if event := self._line(buffer[start:end].decode("utf-8", "replace")):
                events.append(event)
            start = after
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[SSEEvent]:
        """At end of stream: a last event missing its blank line is still delivered (lenient)."""
        events = self.feed(b"\n") if self._buffer else []
        if self._data:
            events.append(SSEEvent(self._event, "\n".join(self._data), bytes(self._raw)))
        self._event, self._data, self._raw = None, [], bytearray()
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if self._first:
            line = line.removeprefix("\ufeff")
            self._first = False
        if not line:
            raw = bytes(self._raw)
            if self._data:
                event = SSEEvent(self._event, "\n".join(self._data), raw)
            else:
                event = SSEEvent(None, "", raw) if raw.strip() else None  # comments only, or a stray blank line
            self._event, self._data, self._raw = None, [], bytearray()
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value or None
        return None


def _line_end(buffer: bytes, start: int) -> tuple[int, int] | None:
    """(end of the line at `start`, start of the next) or None while that line may be incomplete."""
    lf = buffer.find(b"\n", start)
    cr = buffer.find(b"\r", start, lf if lf != -1 else len(buffer))
    if cr == -1:
        return None if lf == -1 else (lf, lf + 1)
    if cr + 1 == lf:
        return cr, lf + 1
    if cr + 1 == len(buffer):
        return None  # a `\r` at the very end may be the first half of `\r\n`
    return cr, cr + 1


# A comment-only frame: a keep-alive any SSE client skips, valid in every protocol at any point.
KEEPALIVE = b": keep-alive\n\n"


def frame(data: str | bytes, event: str | None = None) -> bytes:
    """One SSE frame; multi-line data becomes several `data:` lines."""
    payload = data if isinstance(data, bytes) else data.encode()
    head = b"event: " + event.encode() + b"\n" if event else b""
    lines = b"".join(b"data: " + line + b"\n" for line in payload.split(b"\n"))
    return head + lines + b"\n"
