"""A finished answer as the next request carries it back: the assistant message the chat template
will render in the next turn's prompt.

The next turn's prompt holds the answer as the template renders it, which is often not the tokens
that were generated: templates drop reasoning from history, re-tokenising text merges tokens
differently, tool arguments come back re-serialised. Rendering [the prompt's messages, this
message] gives the tokens the next turn will start with, so the engine can compute them ahead.
"""

from __future__ import annotations

from typing import Any

from mlxgw.canonical import Event, TextDelta, ThinkingDelta, ToolCallDelta, ToolCallStart
from mlxgw.worker import tokens as tk
from mlxgw.worker.frames import Job, assistant_message
from mlxgw.worker.system_turns import fit


class AnswerRecord:
    """The text, reasoning and tool calls of one answer, as its events went out."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: list[dict[str, Any]] = []

    def add(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, TextDelta):
                self._text.append(event.text)
            elif isinstance(event, ThinkingDelta):
                self._reasoning.append(event.text)
            elif isinstance(event, ToolCallStart):
                self._calls.append({"id": event.id, "name": event.name, "arguments": ""})
            elif isinstance(event, ToolCallDelta):
                self._calls[event.index]["arguments"] += event.arguments

    def message(self) -> dict[str, Any]:
        """The answer in the shape the daemon gives an assistant turn (worker.frames.assistant_message)."""
        calls = [(c["id"], c["name"], c["arguments"]) for c in self._calls]
        return assistant_message("".join(self._text), "".join(self._reasoning), calls)


def next_turn_tokens(tokenizer: Any, job: Job, answer: AnswerRecord) -> list[int] | None:
    """The tokens the next request of this conversation starts with: the prompt's messages
    and this answer, as the chat template renders them."""
    try:
        return tokenizer.apply_chat_template(
            fit(tokenizer, [*job.messages, answer.message()]), tools=job.tools or None, add_generation_prompt=False
        )
    except Exception:  # a template that takes no history ending in an answer: nothing to compute ahead
        return None


def head_length(tokenizer: Any, job: Job, prompt: list[int]) -> int:
    """How many leading tokens of `prompt` are its system turn and tools, as the template renders
    them alone (0 without a system turn)."""
    if not job.messages or job.messages[0].get("role") != "system":
        return 0
    try:
        head = tokenizer.apply_chat_template(
            job.messages[:1], tools=job.tools or None, add_generation_prompt=False
        )
    except Exception:  # a template that wants a user turn
        return 0
    return tk.common_prefix(tk.pack(head), tk.pack(prompt))
