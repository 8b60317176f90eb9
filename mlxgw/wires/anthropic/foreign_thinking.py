"""Thinking blocks Anthropic did not mint, taken out of a client's body before it passes through to
Anthropic, which refuses them ("Invalid `signature` in `thinking` block"): those holding OpenAI's
reasoning state (an earlier answer from a Responses backend) and those mlxgw signed (a local
model's thinking, another provider's reasoning). Anthropic's rules allow leaving out earlier turns'
thinking, with one exception: with thinking on, the last assistant turn, when it calls tools, must
open with a thinking block. Where taking mlxgw's block out breaks that, the request goes without
thinking (and without the context edits that need it) until the tool loop ends: a text copy of the
block would not satisfy the rule either, and the conversation's own thinking is kept in every other
turn."""

from __future__ import annotations

from typing import Any

from mlxgw.wires.anthropic.openai_state import unsealed
from mlxgw.wires.thinking_signature import is_ours

_THINKING_BLOCKS = ("thinking", "redacted_thinking")


def without_foreign_thinking(body: dict) -> dict:
    """`body` itself when it holds no such block; otherwise a copy without them."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(_carries_foreign(m) for m in messages):
        return body
    kept = []
    for msg in messages:
        if _carries_foreign(msg):
            msg = {**msg, "content": [b for b in msg["content"] if not _foreign(b)]}
            if not msg["content"]:
                continue  # Anthropic refuses an empty turn, and joins the same-role turns around it
        kept.append(msg)
    body = {**body, "messages": kept}
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive") and _needs_thinking_first(kept):
        _thinking_off(body)
    return body


def _foreign(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") != "thinking":
        return False
    signature = block.get("signature")
    return unsealed(signature) is not None or is_ours(signature, block.get("thinking"))


def _carries_foreign(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(_foreign(b) for b in content)


def _needs_thinking_first(messages: list) -> bool:
    """Whether the last assistant turn calls tools without opening with a thinking block."""
    last = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "assistant"), None)
    content = last.get("content") if last else None
    if not isinstance(content, list) or not content:
        return False
    calls = any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content)
    first = content[0].get("type") if isinstance(content[0], dict) else None
    return calls and first not in _THINKING_BLOCKS


def _thinking_off(body: dict) -> None:
    del body["thinking"]
    management = body.get("context_management")
    edits = management.get("edits") if isinstance(management, dict) else None
    if isinstance(edits, list):
        # Anthropic: "`clear_thinking_20251015` strategy requires `thinking` to be enabled".
        kept = [e for e in edits if not (isinstance(e, dict) and str(e.get("type", "")).startswith("clear_thinking"))]
        if kept:
            body["context_management"] = {**management, "edits": kept}
        else:
            del body["context_management"]
