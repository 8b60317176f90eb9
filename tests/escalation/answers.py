"""The answers the scripted demo models give, and the tool they are offered."""

from __future__ import annotations

import json

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a city up",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def call(name: str, arguments: dict) -> str:
    return json.dumps({"name": name, "arguments": arguments}, separators=(",", ":"))


GOOD = call("lookup", {"city": "Paris"})
# Each answer: what the model writes, and the JSON payloads the vocabulary takes whole (no token of a
# scripted answer may repeat; see tests/scripted_model.py).
ANSWERS = {
    "unparsed": ("<tool_call>{bad json</tool_call>", ()),
    "unknown_tool": (f"<tool_call>{call('nosuch', {})}</tool_call>", (call("nosuch", {}),)),
    "bad_arguments": (f"<tool_call>{call('lookup', {'city': 5})}</tool_call>", (call("lookup", {"city": 5}),)),
    "good": (f"Checking.<tool_call>{GOOD}</tool_call>", (GOOD,)),
    # Two calls in one block: the good one goes out first, then the bad one is found.
    "good_then_bad": (f"<tool_call>[{GOOD},{call('nosuch', {})}]</tool_call>", (f"[{GOOD},{call('nosuch', {})}]",)),
}
BAD = ("unparsed", "unknown_tool", "bad_arguments")
