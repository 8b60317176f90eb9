"""Judging what a client received: a complete stream, a stream ended by a protocol error frame, or an
HTTP error in the protocol's shape. Anything else is a bug, described in the returned string."""

from __future__ import annotations

import json


def openai_error_ok(body: object) -> bool:
    err = body.get("error") if isinstance(body, dict) else None
    return isinstance(err, dict) and {"message", "type", "param", "code"} <= err.keys() and isinstance(err["message"], str)


def anthropic_error_ok(body: object) -> bool:
    if not isinstance(body, dict) or body.get("type") != "error":
        return False
    err = body.get("error")
    return isinstance(err, dict) and isinstance(err.get("type"), str) and isinstance(err.get("message"), str)


def error_shape_ok(protocol: str, body: object) -> bool:
    return openai_error_ok(body) if protocol == "openai" else anthropic_error_ok(body)


def frames(raw: bytes) -> list[tuple[str | None, str]]:
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        event, data = None, []
        for line in block.decode("utf-8", errors="strict").split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        if event is not None or data:
            out.append((event, "\n".join(data)))
    return out


def judge(protocol: str, status: int, body: bytes) -> str:
    """"ok" | "error_event" | "http_error", or "bad: why"."""
    if status != 200:
        try:
            parsed = json.loads(body)
        except ValueError:
            return f"bad: HTTP {status} with a body that is not JSON: {body[:200]!r}"
        return "http_error" if error_shape_ok(protocol, parsed) else f"bad: HTTP {status} error shape {body[:200]!r}"
    try:
        got = frames(body)
    except UnicodeDecodeError:
        return "bad: stream is not UTF-8"
    if not got:
        return "bad: empty stream"
    return _judge_openai(got) if protocol == "openai" else _judge_anthropic(got)


def _judge_openai(got: list[tuple[str | None, str]]) -> str:
    for i, (_, data) in enumerate(got):
        last = i == len(got) - 1
        if data == "[DONE]":
            return "ok" if last else "bad: frames after [DONE]"
        try:
            chunk = json.loads(data)
        except ValueError:
            return f"bad: frame is not JSON: {data[:200]!r}"
        if "error" in chunk:
            if not openai_error_ok(chunk):
                return f"bad: error frame shape {data[:200]!r}"
            return "error_event" if last else "bad: frames after the error frame"
        if "choices" not in chunk:
            return f"bad: chunk without choices {data[:200]!r}"
    return "bad: stream ended without [DONE] or an error frame"


def _judge_anthropic(got: list[tuple[str | None, str]]) -> str:
    open_block: int | None = None
    next_index = 0
    for i, (event, data) in enumerate(got):
        last = i == len(got) - 1
        try:
            payload = json.loads(data)
        except ValueError:
            return f"bad: frame is not JSON: {data[:200]!r}"
        if event is None or payload.get("type") != event:
            return f"bad: event {event!r} with data type {payload.get('type')!r}"
        if i == 0 and event not in ("message_start", "error"):
            return f"bad: first event is {event}"
        if event == "error":
            if not anthropic_error_ok(payload):
                return f"bad: error frame shape {data[:200]!r}"
            return "error_event" if last else "bad: frames after the error frame"
        if event == "content_block_start":
            if open_block is not None or payload.get("index") != next_index:
                return f"bad: block {payload.get('index')} started while {open_block} open (expected {next_index})"
            open_block = next_index
        elif event == "content_block_delta" and payload.get("index") != open_block:
            return f"bad: delta for block {payload.get('index')}, open is {open_block}"
        elif event == "content_block_stop":
            if payload.get("index") != open_block:
                return f"bad: stop for block {payload.get('index')}, open is {open_block}"
            open_block, next_index = None, next_index + 1
        elif event == "message_stop":
            return "ok" if last and open_block is None else "bad: message_stop not last or a block still open"
    return "bad: stream ended without message_stop or an error event"
