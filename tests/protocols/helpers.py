"""Small helpers shared by the protocol tests."""

from __future__ import annotations

from mlxgw.canonical import Event


def render_all(renderer, events: list[Event]) -> bytes:
    """Everything a renderer writes for `events`, including what closes the stream."""
    return b"".join(renderer.render(event) for event in events) + renderer.close()
