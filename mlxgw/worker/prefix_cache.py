"""The prompt cache of one loaded model, in memory: the KV caches of earlier prompts, so that a prompt
that starts like an earlier one (the next turn of a conversation, another session or sub-agent with
the same system prompt and tools, a retry) prefills only what follows.

Any entry serves the longest prefix it shares with a new prompt: a longer entry is trimmed back to
the shared part where the cache type allows (plain KV caches do; recurrent layers do not, and serve
only prompts they are a whole prefix of). An entry that is a prefix of a trimmable newer one is
dropped, as the newer one serves it. Under the byte budget, short entries go before long ones,
each least recently used first: a long shared head costs far more to compute again than the small
requests agents interleave (titles, summaries) that would otherwise push it out.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import KVCache, can_trim_prompt_cache, trim_prompt_cache

from mlxgw.worker import tokens as tk

# Entries at least this long are kept before shorter ones, and saved to disk.
LONG_PREFIX_TOKENS = 1024
MAX_ENTRIES = 64


def reusable(entry_tokens: int, shared: int, prompt_tokens: int, trimmable: bool) -> int:
    """How many tokens of a prompt an entry serves, `shared` tokens leading both. The prompt's last
    token is always computed: generation starts from its logits."""
    most = prompt_tokens - 1
    if shared == entry_tokens and shared <= most:
        return shared
    return min(shared, most) if trimmable else 0


def view(cache: list[Any], trim: int) -> list[Any]:
    """A copy of `cache` that holds `trim` fewer tokens, for the batch; `cache` stays as it is.

    The batch only reads the caches it is given (it copies them into its own), and trimming a KV
    cache only moves its offset: a shallow copy of each KV layer will do. Other kinds are copied."""
    out = [copy.copy(c) if type(c) is KVCache else copy.deepcopy(c) for c in cache]
    if trim:
        trim_prompt_cache(out, trim)
    return out


def compact(cache: list[Any]) -> list[Any]:
    """`cache` holding no more room than its tokens need, contiguous and evaluated: what is counted
    against the budget, and what may be written to disk from another thread."""
    out = []
    for c in cache:
        if type(c) is KVCache and c.keys is not None:
            c, full = KVCache(), c
            c.keys = mx.contiguous(full.keys[..., : full.offset, :])
            c.values = mx.contiguous(full.values[..., : full.offset, :])
            c.offset = full.offset
        out.append(c)
    mx.eval([c.state for c in out])
    return out


@dataclass(eq=False)
class Entry:
    tokens: bytes  # packed (see mlxgw.worker.tokens)
    cache: list[Any]
    nbytes: int
    trimmable: bool
    used: int  # the cache's clock at its last use

    @property
    def length(self) -> int:
        return tk.count(self.tokens)


@dataclass
class CacheStats:
    """What the prompt caches did, for the worker's status."""

    lookups: int = 0  # prompts looked up
    hits: int = 0  # served (in part) from memory
    disk_hits: int = 0  # served (in part) from disk
    tokens_reused: int = 0  # prompt tokens read from memory
    disk_tokens_reused: int = 0  # prompt tokens read from disk
    evictions: int = 0  # memory entries dropped for the budget
    ahead_tokens: int = 0  # tokens of finished turns computed ahead, as the next request will render them


class PrefixCache:
    def __init__(self, max_bytes: int, stats: CacheStats, *, max_entries: int = MAX_ENTRIES) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._stats = stats
        self._entries: list[Entry] = []
        self._clock = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries)

    def best(self, prompt: bytes) -> tuple[Entry | None, int]:
        """The entry that serves most of `prompt`, and how many tokens it serves."""
        best, best_n = None, 0
        for entry in self._entries:
            n = reusable(entry.length, tk.common_prefix(entry.tokens, prompt), tk.count(prompt), entry.trimmable)
            if n > best_n:
                best, best_n = entry, n
        return best, best_n

    def take(self, entry: Entry, n: int) -> list[Any]:
        """A cache of `entry`'s first `n` tokens, for the batch."""
        self._touch(entry)
        return view(entry.cache, entry.length - n)

    def insert(self, tokens: bytes, cache: list[Any], *, budget: int) -> None:
        """Keep `cache` (compacted: see `compact`), which holds `tokens`; then fit `budget` bytes."""
        n = tk.count(tokens)
        trimmable = can_trim_prompt_cache(cache)
        for entry in self._entries:
            if entry.length >= n and entry.tokens.startswith(tokens) and (entry.trimmable or entry.length == n):
                self._touch(entry)  # it serves these tokens already
                self.shrink(budget)
                return
        if trimmable:
            self._entries = [e for e in self._entries if not tokens.startswith(e.tokens)]
        entry = Entry(tokens, cache, sum(c.nbytes for c in cache), trimmable, 0)
        self._touch(entry)
        self._entries.append(entry)
        self.shrink(budget)

    def shrink(self, budget: int) -> None:
        """Drop entries until they fit in `budget` bytes and the entry bound: short ones first."""
        while self._entries and (self.nbytes > budget or len(self._entries) > self.max_entries):
            victim = min(self._entries, key=lambda e: (e.length >= LONG_PREFIX_TOKENS, e.used))
            self._entries.remove(victim)
            self._stats.evictions += 1

    def clear(self) -> None:
        self._entries = []

    def _touch(self, entry: Entry) -> None:
        self._clock += 1
        entry.used = self._clock
