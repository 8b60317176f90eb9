"""Constrained decoding: a request's answer held to a JSON schema or to one of its tools' calls.

A job's `constraint` (see `Job`) becomes an llguidance grammar; each constrained sequence gets a
logits processor of its own that masks the tokens the grammar does not allow at that point, so a
batch mixes constrained and free sequences. A grammar that is complete allows only the model's
end-of-turn tokens: a schema-complete answer ends there.

llguidance was picked over xgrammar and outlines-core: on the demo's 8192-token vocabulary it took
~30-50 µs a token and ~1 ms to compile a small schema, where outlines-core took ~100 µs a token and
~185 ms to compile the same schema (it builds an index over the whole vocabulary per schema), and
xgrammar requires torch (and triton) to import at all. llguidance is what llama.cpp, vLLM and
SGLang use, is actively released and compiles JSON Schema and Lark grammars with JSON inside.

Tool calls are constrained for models whose calls are JSON inside start/end markers (mlx-lm's
`json_tools` parser: Qwen, Hermes and the demo's `<tool_call>{"name", "arguments"}</tool_call>`);
other formats generate as before.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from typing import Any

import llguidance as llg
import mlx.core as mx
import numpy as np
from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

# Compact JSON: with free whitespace a model can pad an answer forever; lenient: schemas from
# clients carry keywords the engine does not implement ("format": "uri", "$schema"...), which
# should not make the request fail.
JSON_OPTIONS = {"whitespace_flexible": False, "lenient": True}
# Compiled grammars kept per (model, grammar): an agent sends the same tools every turn.
MAX_COMPILED = 128
MAX_TOKENIZERS = 8


class ConstraintError(Exception):
    """A constraint that cannot be compiled (an invalid schema, a tool that was not offered)."""


class Grammars:
    """The engine's compiled grammars and the llguidance tokenizer of each model."""

    def __init__(self) -> None:
        self._tokenizers: OrderedDict[str, llg.LLTokenizer] = OrderedDict()
        self._compiled: OrderedDict[tuple[str, str], llg.LLMatcher] = OrderedDict()

    def processor(self, constraint: dict[str, Any] | None, tools: list[dict], slot) -> GrammarProcessor | None:
        """The logits processor holding one sequence to `constraint`, or None without one (or
        for a tool call in a format the grammar cannot express)."""
        if not constraint:
            return None
        grammar = grammar_for(constraint, tools, slot, self._tokenizer)
        if grammar is None:
            return None
        key = (slot.path, grammar)
        matcher = self._compiled.get(key)
        if matcher is None:
            matcher = llg.LLMatcher(self._tokenizer(slot), grammar, log_level=0)
            if matcher.is_error():
                raise ConstraintError(f"the {_what(constraint)} cannot be used: {matcher.get_error()}")
            self._compiled[key] = matcher
            if len(self._compiled) > MAX_COMPILED:
                self._compiled.popitem(last=False)
        self._compiled.move_to_end(key)
        return GrammarProcessor(matcher.deep_copy(), self._tokenizer(slot).vocab_size)

    def _tokenizer(self, slot) -> llg.LLTokenizer:
        tokenizer = self._tokenizers.get(slot.path)
        if tokenizer is None:
            backend = copy.copy(slot.tokenizer._tokenizer.backend_tokenizer)
            backend.no_padding()
            backend.no_truncation()
            tokenizer = llg.LLTokenizer(backend.to_str(), eos_token=sorted(slot.rules.end_ids))
            self._tokenizers[slot.path] = tokenizer
            if len(self._tokenizers) > MAX_TOKENIZERS:
                self._tokenizers.popitem(last=False)
        self._tokenizers.move_to_end(slot.path)
        return tokenizer


def grammar_for(constraint: dict[str, Any], tools: list[dict], slot, tokenizer_of) -> str | None:
    kind = constraint.get("type")
    if kind == "json_object":
        return _json({"type": "object"})
    if kind == "json_schema":
        schema = constraint.get("schema")
        return _json(schema if isinstance(schema, dict) and schema else {"type": "object"})
    if kind == "tool_call":
        return _tool_call(constraint.get("names") or [], tools, slot, tokenizer_of)
    raise ConstraintError(f"unknown constraint {kind!r}")


def _json(schema: dict) -> str:
    try:
        return llg.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_OPTIONS)
    except ValueError as e:
        raise ConstraintError(f"the JSON schema cannot be used: {e}") from e


def _tool_call(names: list[str], tools: list[dict], slot, tokenizer_of) -> str | None:
    """One call of one of `names`, in the model's own markers, with schema-valid arguments."""
    rules = slot.rules
    parser = rules.tool_parser
    if parser is None or not getattr(parser, "__module__", "").endswith(".json_tools"):
        return None
    offered = {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools}
    calls = []
    for name in names:
        if name not in offered:
            raise ConstraintError(f"tool_choice names {name!r}, which is not among the tools")
        calls.append(
            {
                "type": "object",
                "properties": {"name": {"const": name}, "arguments": offered[name] or {"type": "object"}},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    if not calls:
        return None
    schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
    start, end = (_marker(m, slot, tokenizer_of(slot)) for m in (rules.tool_call_start, rules.tool_call_end))
    lark = (
        f"start: {start} \"\\n\" call \"\\n\" {end}\n"
        f"call: %json {json.dumps({**schema, 'x-guidance': JSON_OPTIONS})}\n"
    )
    return llg.LLMatcher.grammar_from_lark(lark)


def _marker(text: str, slot, tokenizer: llg.LLTokenizer) -> str:
    """A marker in Lark: by token id where it is an added token (llguidance matches those only as
    the token, never as the text), else as its text."""
    token_id = slot.tokenizer.get_vocab().get(text)
    if token_id is not None and tokenizer.is_special_token(token_id):
        return f"<[{token_id}]>"
    return json.dumps(text)


def _what(constraint: dict[str, Any]) -> str:
    return "tool's parameters schema" if constraint.get("type") == "tool_call" else "JSON schema"


class GrammarProcessor:
    """mlx-lm's batch calls this with one sequence's tokens (prompt and generated) and logits,
    once per generated token; the token sampled after the previous call is the last of `tokens`."""

    def __init__(self, matcher: llg.LLMatcher, vocab_size: int) -> None:
        self._matcher = matcher
        self._started = False
        self._mask = allocate_token_bitmask(1, vocab_size)

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        if self._started:
            self._matcher.consume_token(int(tokens[-1].item()))
        self._started = True
        # In an error state (which the mask itself prevents) llguidance allows only the end tokens.
        fill_next_token_bitmask(self._matcher, self._mask)
        allowed = np.unpackbits(self._mask.view(np.uint8), bitorder="little")
        width = logits.shape[-1]
        if allowed.size < width:
            allowed = np.pad(allowed, (0, width - allowed.size))
        return mx.where(mx.array(allowed[:width].astype(bool)), logits, -mx.inf)
