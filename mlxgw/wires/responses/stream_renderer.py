"""Writing canonical events as a Responses stream: the semantic events the official SDK accumulates,
each with its sequence number and indexes."""

from __future__ import annotations


class StreamRenderer:
    def __init__(self, model: str, request_id: str, include_usage: bool = False) -> None:
        raise NotImplementedError
