from __future__ import annotations

import pytest

from mlxgw.worker.stops import StopMatcher


def feed_all(matcher: StopMatcher, pieces: list[str]) -> str:
    out = ""
    for piece in pieces:
        out += matcher.feed(piece)
        if matcher.matched:
            return out
    return out + matcher.flush()


@pytest.mark.parametrize(
    "pieces, stops, expected, matched",
    [
        (["Hello wor", "ld, and more"], ["world"], "Hello ", "world"),
        (["ab", "c", "d"], ["bcd"], "a", "bcd"),
        (["no stop ", "here"], ["xyz"], "no stop here", None),
        (["wo", "rk world"], ["world"], "work ", "world"),  # a false start is released
        (["the end. ", "THE END"], ["END", "end"], "the ", "end"),  # the earliest match wins
        (["aaab"], ["aab"], "a", "aab"),
        (["x"], [""], "x", None),  # an empty stop never matches
    ],
)
def test_matches_across_pieces(pieces, stops, expected, matched):
    matcher = StopMatcher(stops)
    assert feed_all(matcher, pieces) == expected
    assert matcher.matched == matched


def test_holds_back_only_a_possible_start():
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("abc ST") == "abc "
    assert matcher.feed("x") == "STx"
    assert matcher.feed("S") == ""
    assert matcher.flush() == "S"
