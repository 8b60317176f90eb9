"""Tokens to events with the demo tokenizer: thinking, tool calls, special tokens, stops."""

from __future__ import annotations

import json

from mlxgw.canonical import (
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UnparsedToolCall,
)
from mlxgw.worker.sequence_events import SequenceOutput, TextRules

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def decode_tokens(tokenizer, tokens, *, stops=(), tools=TOOLS, parse_tools=True, state="normal"):
    output = SequenceOutput(
        TextRules.for_tokenizer(tokenizer),
        tokenizer.detokenizer,
        stops=list(stops),
        tools=tools,
        parse_tools=parse_tools,
        state=state,
    )
    events = []
    for token in tokens:
        events += output.add_token(token)
        if output.stop_sequence:
            return output, events
    return output, events + output.end()


def decode_text(tokenizer, text, **kw):
    return decode_tokens(tokenizer, tokenizer.encode(text, add_special_tokens=False), **kw)


def merged(events):
    """Adjacent deltas of one kind joined, so assertions do not depend on token boundaries."""
    out = []
    for e in events:
        if out and type(e) is type(out[-1]) and isinstance(e, TextDelta | ThinkingDelta):
            out[-1] = type(e)(out[-1].text + e.text)
        else:
            out.append(e)
    return out


def test_thinking_becomes_thinking_deltas(demo_tokenizer):
    _, events = decode_text(demo_tokenizer, "<think>Let me see.</think>The answer is 4.")
    assert merged(events) == [ThinkingDelta("Let me see."), TextDelta("The answer is 4.")]


def test_generation_that_starts_inside_thinking(demo_tokenizer):
    _, events = decode_text(demo_tokenizer, "hmm</think>Four.", state="reasoning")
    assert merged(events) == [ThinkingDelta("hmm"), TextDelta("Four.")]


def test_tool_calls_are_parsed_into_events(demo_tokenizer):
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}\n</tool_call>'
    output, events = decode_text(demo_tokenizer, "Checking." + call + call)
    events = merged(events)
    assert events[0] == TextDelta("Checking.")
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [(s.index, s.name) for s in starts] == [(0, "get_weather"), (1, "get_weather")]
    assert starts[0].id != starts[1].id
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [json.loads(d.arguments) for d in deltas] == [{"city": "Paris", "days": 2}] * 2
    assert [e.index for e in events if isinstance(e, ToolCallEnd)] == [0, 1]
    assert output.tool_calls == 2


def test_tool_call_text_stays_text_without_tools_and_a_malformed_one_is_marked_unparsed(demo_tokenizer):
    call = '<tool_call>\n{"name": "get_weather"}\n</tool_call>'
    output, events = decode_text(demo_tokenizer, call, parse_tools=False)
    assert merged(events) == [TextDelta(call)] and output.tool_calls == 0

    broken = "<tool_call>\n{not json\n</tool_call>"
    output, events = decode_text(demo_tokenizer, broken)
    assert merged(events) == [UnparsedToolCall(broken)] and output.tool_calls == 0


def test_special_tokens_never_reach_the_text(demo_tokenizer):
    im_start = demo_tokenizer.convert_tokens_to_ids("<|im_start|>")
    tokens = demo_tokenizer.encode("one", add_special_tokens=False) + [im_start]
    tokens += demo_tokenizer.encode(" two", add_special_tokens=False)
    _, events = decode_tokens(demo_tokenizer, tokens)
    assert merged(events) == [TextDelta("one two")]


def test_stop_string_cuts_before_the_match(demo_tokenizer):
    output, events = decode_text(demo_tokenizer, "alpha beta gamma delta", stops=["a gam", "zzz"])
    assert merged(events) == [TextDelta("alpha bet")]
    assert output.stop_sequence == "a gam"
