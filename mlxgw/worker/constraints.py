"""Constrained decoding: a request's answer held to a JSON schema or to one of its tools' calls.

A job's `constraint` (see `Job`) becomes an llguidance grammar; each constrained sequence gets a
logits processor of its own that masks the tokens the grammar does not allow at that point, so a
batch mixes constrained and free sequences. A grammar that is complete allows only the model's
end-of-turn tokens: a schema-complete answer ends there.

llguidance was picked over xgrammar and outlines-core: on the demo's 8192-token vocabulary it took
~30-50 µs a token and ~1 ms to compile a small schema, where outlines-core took ~100 µs a token and
~185 ms to compile the same schema (it builds an index over the whole vocabulary per schema), and
xgrammar requires torch (and triton) to import at all. llguidance has no dependencies, is
actively released (llama.cpp, vLLM and SGLang offer it as an engine), compiles JSON Schema and
Lark grammars with JSON inside them, and has lazy grammars for calls inside free text.

Tool calls are constrained for models whose calls are JSON inside start/end markers (mlx-lm's
`json_tools` parser: Qwen, Hermes and the demo's `<tool_call>{"name", "arguments"}</tool_call>`);
other formats generate as before. A forced tool choice makes the answer one call; with tool choice
auto, the calls the model opens in its text are held to the schemas of the tools the client marked
`strict` (a lazy grammar: free text until the call marker). Only strict tools: a grammar over
every answer costs each of its tokens a round trip to the CPU, and unconstrained calls are what
`fallback_on = ["bad_output"]` checks and escalates.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections import OrderedDict
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import llguidance as llg
import mlx.core as mx
import numpy as np
from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

from mlxgw.worker.sequence_events import initial_state

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
    """The engine's compiled grammars and the llguidance tokenizer of each model.

    Both are built on a thread of their own while the request waits and the batch decodes on
    (llguidance lets go of the GIL to compile, and for much of reading a vocabulary): the demo's
    8192 tokens take ~40 ms to read (a real model's ~150k, about a second), Claude Code's twelve
    tool schemas ~10 ms to compile. Everything else runs on the engine thread.
    """

    def __init__(self) -> None:
        self._tokenizers: OrderedDict[str, llg.LLTokenizer] = OrderedDict()
        self._compiled: OrderedDict[tuple[str, str], llg.LLMatcher] = OrderedDict()
        self._markers: dict[tuple[str, bool], Markers] = {}  # a large vocabulary is slow to read
        self._building: dict[Any, Future] = {}  # a model path or a (path, grammar) -> its build
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grammar")

    def ready(self, job, slot, *, wait: bool) -> bool:
        """Whether what `job`'s constraint needs is built, starting the builds that are not; with
        `wait` (nothing else to do meanwhile), once they are. Its prompt is not rendered yet, so
        the grammar for either state of a thought (open or not) is built."""
        if not job.constraint:
            return True
        try:
            return self._build(job, slot, wait=wait)
        except Exception:  # a build that failed is done again when the request starts, and fails it
            return True

    def _build(self, job, slot, *, wait: bool) -> bool:
        while True:
            tokenizer = self._tokenizers.get(slot.path)
            if tokenizer is None:
                needed = {slot.path: functools.partial(_llg_tokenizer, slot)}
            else:
                grammars = {self._grammar(job, slot, tokenizer, thought_open=o) for o in (False, True)}
                needed = {
                    (slot.path, g): functools.partial(llg.LLMatcher, tokenizer, g, log_level=0)
                    for g in grammars
                    if g is not None and (slot.path, g) not in self._compiled
                }
            if not needed:
                return True
            builds = {key: self._building.get(key) or self._builder.submit(build) for key, build in needed.items()}
            self._building.update(builds)
            if wait:
                futures.wait(builds.values())
            if not all(f.done() for f in builds.values()):
                return False
            for key, build in builds.items():
                del self._building[key]
                if isinstance(key, str):
                    self._keep_tokenizer(key, build.result())
                else:
                    self._keep(key, build.result())

    def processor(self, job, slot, prompt: list[int]) -> GrammarProcessor | None:
        """The logits processor holding one sequence to its job's constraint, or None without one
        (or for tool calls in a format the grammar cannot express)."""
        if not job.constraint:
            return None
        tokenizer = self._tokenizers.get(slot.path) or self._keep_tokenizer(slot.path, _llg_tokenizer(slot))
        thought_open = initial_state(slot.tokenizer, prompt) == "reasoning"
        grammar = self._grammar(job, slot, tokenizer, thought_open=thought_open)
        if grammar is None:
            return None
        key = (slot.path, grammar)
        matcher = self._compiled.get(key) or self._keep(key, llg.LLMatcher(tokenizer, grammar, log_level=0))
        self._compiled.move_to_end(key)
        if matcher.is_error():
            # Its first line; the rest, and the position, are about the grammar built from it.
            reason = re.sub(r"^at \d+\(\d+\): ", "", matcher.get_error().splitlines()[0])
            raise ConstraintError(f"the {_what(job.constraint)} cannot be used: {reason}")
        return GrammarProcessor(matcher.deep_copy(), tokenizer.vocab_size)

    def _grammar(self, job, slot, tokenizer: llg.LLTokenizer, *, thought_open: bool) -> str | None:
        key = (slot.path, thought_open)
        marks = self._markers.get(key)
        if marks is None or marks.tokenizer is not tokenizer:
            marks = self._markers[key] = Markers(slot, tokenizer, thought_open=thought_open)
        return grammar_for(job.constraint, job.tools, marks)

    def _keep(self, key: tuple[str, str], matcher: llg.LLMatcher) -> llg.LLMatcher:
        self._compiled[key] = matcher  # one in error too: the next request with it fails alike
        if len(self._compiled) > MAX_COMPILED:
            self._compiled.popitem(last=False)
        return matcher

    def _keep_tokenizer(self, path: str, tokenizer: llg.LLTokenizer) -> llg.LLTokenizer:
        self._tokenizers[path] = tokenizer
        if len(self._tokenizers) > MAX_TOKENIZERS:
            self._tokenizers.popitem(last=False)
        return tokenizer


def _llg_tokenizer(slot) -> llg.LLTokenizer:
    backend = copy.copy(slot.tokenizer._tokenizer.backend_tokenizer)
    backend.no_padding()
    backend.no_truncation()
    return llg.LLTokenizer(backend.to_str(), eos_token=sorted(slot.rules.end_ids))


def grammar_for(constraint: dict[str, Any], tools: list[dict], marks: Markers) -> str | None:
    """The Lark grammar (llguidance's dialect) of `constraint`; None where it cannot be expressed."""
    kind = constraint.get("type")
    if kind in ("json_object", "json_schema"):
        schema = constraint.get("schema") if kind == "json_schema" else None
        answer = f"answer: %json {_json(schema if isinstance(schema, dict) and schema else {'type': 'object'})}"
        return marks.grammar(f"start: {marks.before}answer", answer)
    if kind not in ("tool_call", "tools"):
        raise ConstraintError(f"unknown constraint {kind!r}")
    if marks.call_start is None:
        return None  # a tool-call format other than JSON between markers: generated as before
    offered = {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools}
    names = (constraint.get("names") or list(offered)) if kind == "tool_call" else list(offered)
    for name in names:
        if name not in offered:
            raise ConstraintError(f"tool_choice names {name!r}, which is not among the tools")
    if not names:
        return None
    # Free calls hold only the arguments of `strict` tools to their schemas; the others take any object.
    held = set(names) if kind == "tool_call" else set(constraint.get("strict") or ())
    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"const": name},
                "arguments": (offered[name] if name in held else None) or {"type": "object"},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for name in names
    ]
    schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
    # The line breaks the chat templates write around a call, which the parser does not need.
    call = f'call: {marks.call_start} "\\n"? %json {_json(schema)} "\\n"? {marks.call_end}'
    if kind == "tool_call":
        return marks.grammar(f"start: {marks.before}call", call)
    # Free text, in which a call the model opens is held to its tool's schema.
    thinking = " | ".join(t for t in (marks.think_start, marks.think_end) if t)
    chunk = f"chunk: TEXT? (({thinking}) TEXT?)*" if thinking else "chunk: TEXT?"
    return marks.grammar("start: chunk (call chunk)*", chunk, call)


def _json(schema: dict) -> str:
    return json.dumps({**schema, "x-guidance": JSON_OPTIONS})


class Markers:
    """A model's tool-call and thinking markers as Lark terms: by token id where llguidance takes
    the marker for a special token (it matches those only as that token, never as their text),
    else as text, which free text then must not contain."""

    def __init__(self, slot, tokenizer: llg.LLTokenizer, *, thought_open: bool) -> None:
        self._vocab = slot.tokenizer.get_vocab()
        self.tokenizer = tokenizer
        self._textual: list[str] = []
        rules = slot.rules
        parser = rules.tool_parser
        json_calls = parser is not None and getattr(parser, "__module__", "").endswith(".json_tools")
        self.call_start = self._term(rules.tool_call_start) if json_calls else None
        self.call_end = self._term(rules.tool_call_end) if json_calls else None
        thinking = slot.tokenizer.has_thinking and slot.tokenizer.think_start and slot.tokenizer.think_end
        self.think_start = self._term(slot.tokenizer.think_start) if thinking else None
        self.think_end = self._term(slot.tokenizer.think_end) if thinking else None
        # A thought the prompt opened is finished before the answer. One the model would open
        # itself is not allowed: gibberish, or a model that thinks at length, would never answer.
        self.before = "thought " if thought_open and thinking else ""

    def _term(self, text: str) -> str:
        token_id = self._vocab.get(text)
        if token_id is not None and self.tokenizer.is_special_token(token_id):
            return f"<[{token_id}]>"
        self._textual.append(text)
        return json.dumps(text)

    def grammar(self, *rules: str) -> str:
        """The rules with the shared ones: `thought` (the rest of a thought the prompt opened, then
        a line break or two) and TEXT (any text without a marker in it)."""
        thought = f'thought: TEXT? {self.think_end} "\\n"? "\\n"?' if self.before else ""
        text = "TEXT: /(.|\\n)+/" + "".join(f" & ~/(.|\\n)*{_literal(t)}(.|\\n)*/" for t in self._textual)
        return llg.LLMatcher.grammar_from_lark("\n".join(["%llguidance {}", *rules, thought, text, ""]))


def _literal(text: str) -> str:
    """`text` as a regex inside Lark's /.../."""
    return re.escape(text).replace("/", "\\/")


def _what(constraint: dict[str, Any]) -> str:
    return "JSON schema" if constraint.get("type") in ("json_object", "json_schema") else "tool's parameters schema"


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
