"""OpenAI's opaque reasoning state (a Responses `encrypted_content`) carried through an Anthropic
client: the thinking block's `signature`, which clients send back untouched, holds it behind a
marker. The next turn brings it back to a Responses backend; Anthropic never sees it (its
passthrough leaves such blocks out, and translation sends only the signatures Anthropic minted)."""

from __future__ import annotations

MARKER = "mlxgw.openai.reasoning:"


def sealed(encrypted: str, item_id: str | None) -> str:
    """A signature holding the state and the id of its reasoning item (ids hold no `:`)."""
    return f"{MARKER}{item_id or ''}:{encrypted}"


def unsealed(signature: str | None) -> tuple[str, str | None] | None:
    """(encrypted_content, item id) of a signature `sealed` made; None for any other."""
    if not signature or not signature.startswith(MARKER):
        return None
    item_id, _, encrypted = signature.removeprefix(MARKER).partition(":")
    return (encrypted, item_id or None) if encrypted else None
