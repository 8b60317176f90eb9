from __future__ import annotations

from mlxgw.canonical import Finish, Start, TextDelta, ToolCallDelta, ToolCallStart, Usage
from mlxgw.worker.frames import decode, encode, event_from_wire, event_to_wire, merge_frames


def test_events_round_trip():
    events = [
        Start(input_tokens=12, cache_read_tokens=4),
        TextDelta("héllo\n"),
        ToolCallStart(0, "call_1", "get"),
        ToolCallDelta(0, '{"a": 1}'),
        Usage(output_tokens=3),
        Finish("stop_sequence", "END"),
    ]
    line = encode({"id": 1, "ev": [event_to_wire(e) for e in events]})
    assert line.count(b"\n") == 1 and line.isascii()
    assert [event_from_wire(item) for item in decode(line)["ev"]] == events


def test_merge_folds_a_request_s_text_but_keeps_order():
    frames = [
        {"id": 1, "ev": [["text", "a"]]},
        {"id": 2, "ev": [["text", "x"]]},
        {"id": 1, "ev": [["text", "b"], ["finish", "end_turn", None]]},
        {"id": 2, "error": {"kind": "api_error"}},
        {"id": 2, "ev": [["text", "y"]]},
    ]
    assert merge_frames(frames) == [
        {"id": 1, "ev": [["text", "ab"], ["finish", "end_turn", None]]},
        {"id": 2, "ev": [["text", "x"]]},
        {"id": 2, "error": {"kind": "api_error"}},
        {"id": 2, "ev": [["text", "y"]]},
    ]
