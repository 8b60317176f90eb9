"""Stop strings, matched on the decoded text as it streams.

mlx-lm matches stop words on token ids, which misses a stop string the model spells with other
tokens than the string's own tokenization. Matching the text catches every spelling.
"""

from __future__ import annotations


class StopMatcher:
    """Feed decoded text in; get back what is safe to emit and the stop string, once one matches.

    Only the tail that could still be the start of a stop string is held back.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in dict.fromkeys(stops) if s]
        self._held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        """The text now safe to emit. After a match it is the text right before the match, and
        `matched` is the stop string; feed nothing more."""
        if not self.stops:
            return text
        buffer = self._held + text
        first = None
        for stop in self.stops:
            at = buffer.find(stop)
            if at >= 0 and (first is None or at < first[0]):
                first = (at, stop)
        if first is not None:
            self._held = ""
            self.matched = first[1]
            return buffer[: first[0]]
        keep = self._partial_tail(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """The held-back tail, at the end of generation: it can no longer become a match."""
        held, self._held = self._held, ""
        return held

    def _partial_tail(self, buffer: str) -> int:
        """The length of the longest suffix of `buffer` that is a proper prefix of a stop."""
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:n]):
                    longest = n
                    break
        return longest
