"""From generated tokens to canonical events, one sequence at a time.

Each token goes through the streaming detokenizer, then the stop-string matcher, then mlx-lm's
text state machine, which splits the text into answer, `<think>` reasoning and tool calls and
strips the markers. Tool calls are parsed with the model's own tool parser when they close.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from mlx_lm.generate import TextStateMachine, make_text_state_machine

from mlxgw.canonical import (
    Event,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UnparsedToolCall,
)
from mlxgw.worker.stops import StopMatcher

# Tokens that close a turn in common chat formats, beside the ones the model config names as EOS.
END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|return|>")


@dataclass(frozen=True)
class TextRules:
    """What a model's tokenizer says about turning its tokens into text."""

    end_ids: frozenset[int]
    skip_ids: frozenset[int]  # special tokens that must never reach the text
    state_machine: TextStateMachine
    tool_parser: Any
    tool_call_start: str
    tool_call_end: str

    @classmethod
    def for_tokenizer(cls, tokenizer) -> TextRules:
        vocab = tokenizer.get_vocab()
        end_ids = set(tokenizer.eos_token_ids)
        end_ids.update(vocab[t] for t in END_OF_TURN if t in vocab)
        markers = {
            tokenizer.think_start,
            tokenizer.think_end,
            tokenizer.tool_call_start,
            tokenizer.tool_call_end,
        }
        special = {
            token_id
            for token_id, added in tokenizer.added_tokens_decoder.items()
            if added.special and added.content not in markers
        }
        return cls(
            end_ids=frozenset(end_ids),
            skip_ids=frozenset(special - end_ids),
            state_machine=make_text_state_machine(tokenizer),
            tool_parser=tokenizer.tool_parser,
            tool_call_start=tokenizer.tool_call_start or "",
            tool_call_end=tokenizer.tool_call_end or "",
        )


def initial_state(tokenizer, prompt: list[int]) -> str:
    """The state generation starts in: reasoning when the prompt leaves a `<think>` open."""
    state = "normal"
    if tokenizer.has_thinking and tokenizer.rfind_think_start(prompt) > tokenizer.rfind_think_end(prompt):
        state = "reasoning"
    return tokenizer.response_initial_state or state


class SequenceOutput:
    """The text side of one generating sequence."""

    def __init__(
        self,
        rules: TextRules,
        detokenizer,
        *,
        stops: list[str],
        tools: list[dict],
        parse_tools: bool,
        state: str,
    ) -> None:
        self._rules = rules
        self._detokenizer = detokenizer
        self._stops = StopMatcher(stops)
        self._tools = tools
        self._parse_tools = parse_tools and rules.tool_parser is not None
        self._sm = rules.state_machine.make_state(state)
        self._state = state
        self._tool_text = ""
        self._events: list[Event] = []
        self.tool_calls = 0

    @property
    def stop_sequence(self) -> str | None:
        """The stop string that ended this sequence, once one has matched."""
        return self._stops.matched

    def add_token(self, token: int) -> list[Event]:
        if token in self._rules.skip_ids:
            return []
        self._detokenizer.add_token(token)
        self._text(self._detokenizer.last_segment)
        if self._stops.matched is not None:
            self._flush()
        return self._take()

    def end(self) -> list[Event]:
        """Everything still held back, at the end of generation (the end token itself is never
        added: it is not text)."""
        if self._stops.matched is None:
            self._detokenizer.finalize()
            self._text(self._detokenizer.last_segment)
            if self._stops.matched is None:
                self._route(self._stops.flush())
        self._flush()
        return self._take()

    def _text(self, text: str) -> None:
        if text:
            self._route(self._stops.feed(text))

    def _route(self, text: str) -> None:
        if text:
            self._sm, segments = TextStateMachine.split(self._sm, text)
            self._segments(segments)

    def _flush(self) -> None:
        self._sm, held, state = TextStateMachine.flush(self._sm)
        self._segments([(state, held)])
        if self._state == "tool":
            self._close_tool_call(terminated=False)

    def _segments(self, segments: list[tuple[str | None, str]]) -> None:
        for state, text in segments:
            if self._state == "tool" and state != "tool":
                self._close_tool_call(terminated=True)
            self._state = state
            if state == "tool":
                self._tool_text += text
            elif state == "reasoning":
                self._emit(ThinkingDelta, text)
            elif state == "normal":
                self._emit(TextDelta, text)
            # Other states (some formats' channel headers) carry no content.

    def _emit(self, kind: type, text: str) -> None:
        if not text:
            return
        last = self._events[-1] if self._events else None
        if type(last) is kind:
            last.text += text
        else:
            self._events.append(kind(text))

    def _close_tool_call(self, *, terminated: bool) -> None:
        text, self._tool_text = self._tool_text, ""
        self._state = "normal"
        end = self._rules.tool_call_end if terminated else ""
        written = self._rules.tool_call_start + text + end
        if not self._parse_tools:
            self._emit(TextDelta, written)
            return
        calls = self._parse(text)
        if calls is None:
            # Not a call we can hand on: the dispatcher decides (bad output, or the text as written).
            self._events.append(UnparsedToolCall(written))
            return
        for call in calls:
            index = self.tool_calls
            self.tool_calls += 1
            arguments = call.get("arguments", {})
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments, ensure_ascii=False)
            self._events.append(ToolCallStart(index, f"call_{uuid.uuid4().hex[:24]}", call["name"]))
            self._events.append(ToolCallDelta(index, arguments))
            self._events.append(ToolCallEnd(index))

    def _parse(self, text: str) -> list[dict] | None:
        try:
            parsed = self._rules.tool_parser(text, self._tools)
        except Exception:  # each parser fails its own way on malformed calls
            return None
        calls = parsed if isinstance(parsed, list) else [parsed]
        if not calls or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in calls):
            return None
        return calls

    def _take(self) -> list[Event]:
        events, self._events = self._events, []
        return events
