"""Token sequences packed as bytes: compact to keep beside every cached prompt, and quick to compare.

A prompt of 60k tokens packs into 240 KB; the common prefix of two such is found with a handful of
byte-string comparisons (C speed) instead of a Python loop over every token. Standard library
only: the CLI reads the disk cache through these too.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable

WIDTH = 4  # bytes a token


def pack(tokens: Iterable[int]) -> bytes:
    packed = array("i", tokens)
    assert packed.itemsize == WIDTH
    return packed.tobytes()


def unpack(packed: bytes) -> list[int]:
    tokens = array("i")
    tokens.frombytes(packed)
    return tokens.tolist()


def count(packed: bytes) -> int:
    return len(packed) // WIDTH


def common_prefix(a: bytes, b: bytes) -> int:
    """How many leading tokens two packed sequences share."""
    n = min(len(a), len(b)) // WIDTH
    if a[: n * WIDTH] == b[: n * WIDTH]:
        return n
    lo, hi = 0, n  # the first lo tokens agree; the first hi do not all agree
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo * WIDTH : mid * WIDTH] == b[lo * WIDTH : mid * WIDTH]:
            lo = mid
        else:
            hi = mid
    return lo


def digest(packed: bytes) -> str:
    """The name of a token sequence (on disk: its files' name)."""
    return hashlib.sha256(packed).hexdigest()[:32]
