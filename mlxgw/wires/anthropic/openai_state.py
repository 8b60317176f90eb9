"""OpenAI's opaque reasoning state (a Responses `encrypted_content`) carried through an Anthropic
client: the thinking block's `signature`, which clients send back untouched, holds it behind a
marker. The next turn brings it back to a Responses backend; Anthropic never sees it (its
passthrough leaves such blocks out, and translation sends only the signatures Anthropic minted)."""

from __future__ import annotations

from mlxgw.canonical import ThinkingPart
from mlxgw.wires.thinking_signature import sign

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


def signature_for(part: ThinkingPart) -> str:
    """The signature a thinking block carries to an Anthropic client: Anthropic's own, OpenAI's
    state sealed, or, for thinking no provider signed (a local model's, a reasoning summary),
    mlxgw's, so that the block is recognised and left out when the conversation goes to Anthropic."""
    if part.origin == "openai" and part.encrypted:
        return sealed(part.encrypted, part.item_id)
    if part.origin == "anthropic" and part.signature:
        return part.signature
    return sign(part.text)
