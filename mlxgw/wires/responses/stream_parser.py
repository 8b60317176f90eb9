"""Reading a Responses upstream's stream of semantic events into canonical events."""

from __future__ import annotations


class StreamParser:
    def __init__(self) -> None:
        raise NotImplementedError
