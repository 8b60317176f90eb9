"""The loaded models: each with its tokenizer, its batch generator and its prompt cache (in memory,
and for long prompts on disk too).

Least recently used models make room for new ones, idle ones are unloaded after a while, and a
model with sequences in flight is never unloaded. Runs on the engine thread only.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_lm import load
from mlx_lm.generate import BatchGenerator
from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache
from mlx_lm.utils import load_tokenizer

from mlxgw.worker import tokens as tk
from mlxgw.worker.disk_cache import DiskCache, Shelf
from mlxgw.worker.prefix_cache import LONG_PREFIX_TOKENS, CacheStats, PrefixCache, compact, reusable, view
from mlxgw.worker.sequence_events import TextRules

# Temperature when neither the request nor the model's generation_config.json sets one: the
# default of the OpenAI and Anthropic APIs.
DEFAULT_TEMPERATURE = 1.0
# A disk entry is read only when it saves at least this many more prompt tokens than memory does.
DISK_MIN_GAIN = 256

log = logging.getLogger("mlxgw.worker")


class ModelUnavailable(Exception):
    """The model's files are not here (a missing directory, an HF repo not in the local cache)
    or do not load."""


def resolve(path: str) -> Path:
    """The local directory of a model given as a directory or an HF repo id, never downloading."""
    local = Path(path).expanduser()
    if local.is_dir():
        return local
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(path, local_files_only=True))
    except Exception as e:  # not a repo id, not cached, incomplete: all mean "not here"
        raise ModelUnavailable(
            f"model {path!r} is neither a directory nor a cached Hugging Face repo "
            f"(download it with `mlxgw models pull {path}`)"
        ) from e


class Slot:
    """One loaded model."""

    def __init__(
        self,
        name: str,
        path: str,
        directory: Path,
        *,
        prompt_cache_bytes: int,
        prefill_step_size: int,
        stats: CacheStats,
        disk: DiskCache | None,
    ) -> None:
        self.name = name
        self.path = path
        model, tokenizer, config = load(str(directory), return_config=True)
        empty = make_prompt_cache(model)
        if not all(hasattr(c, "merge") for c in empty):
            # Everything here decodes through the batch generator, which needs mergeable caches.
            raise ModelUnavailable(f"model {name!r} has a KV cache that cannot be batched")
        self.model = model
        self.tokenizer = tokenizer
        self.rules = TextRules.for_tokenizer(tokenizer)
        text_config = config.get("text_config", {})
        self.context_length: int | None = config.get("max_position_embeddings") or text_config.get(
            "max_position_embeddings"
        )
        self.sampling = _sampling_defaults(directory)
        self.prefill_step_size = prefill_step_size
        self.batch = self._new_batch()
        self.prompt_cache_bytes = prompt_cache_bytes
        self.stats = stats
        self.prompt_cache = PrefixCache(prompt_cache_bytes, stats)
        self._disk = disk
        # Whether a longer cache can serve a shorter prefix (plain KV caches), or only exact prefixes
        # (recurrent layers): then the engine keeps the cache at a prompt's boundaries as it fills.
        self.trimmable = can_trim_prompt_cache(empty)
        self.shelf: Shelf | None = (
            disk.shelf(directory, name, path, trimmable=self.trimmable) if disk is not None else None
        )
        self.nbytes = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
        self.active: dict[int, Any] = {}  # batch uid -> the engine's sequence, or a turn computed ahead
        self.loaded_at = self.last_used = time.time()
        self.unload_requested = False

    def _new_batch(self) -> BatchGenerator:
        return BatchGenerator(
            self.model, stop_tokens=[[t] for t in sorted(self.rules.end_ids)], prefill_step_size=self.prefill_step_size
        )

    def reset_batch(self) -> None:
        """A fresh, empty batch, after a failed step left the old one in an unknown state."""
        self.batch.close()
        self.batch = self._new_batch()

    def fetch(self, prompt: list[int]) -> tuple[list[Any] | None, int]:
        """A cache of the longest prefix of `prompt` kept in memory or on disk, for the batch, and
        how many tokens it holds."""
        packed = tk.pack(prompt)
        entry, n = self.prompt_cache.best(packed)
        self.stats.lookups += 1
        if self.shelf is not None and self._disk.max_bytes > 0:
            digest, held, on_disk = self.shelf.best(packed, reusable)
            cache = self.shelf.load(digest) if on_disk >= n + DISK_MIN_GAIN else None
            if cache is not None:
                self.stats.disk_hits += 1
                self.stats.disk_tokens_reused += on_disk
                # Kept in memory too: the next prompt like it need not read the disk again.
                self._keep(held, cache)
                return view(cache, tk.count(held) - on_disk), on_disk
        if entry is None:
            return None, 0
        self.stats.hits += 1
        self.stats.tokens_reused += n
        return self.prompt_cache.take(entry, n), n

    def remember(self, tokens: list[int], cache: list[Any], *, persist: bool = True) -> list[Any]:
        """Keep `cache`, which holds `tokens`, for later prompts; long ones on disk too, unless
        `persist` is false (a longer entry for the same turn is on its way). Returns the cache as
        kept (see prefix_cache.compact)."""
        cache = compact(cache)
        packed = tk.pack(tokens)
        self._keep(packed, cache)
        if persist and self.shelf is not None and self._disk.max_bytes > 0 and len(tokens) >= LONG_PREFIX_TOKENS:
            self.shelf.save(packed, cache)
        return cache

    def _keep(self, packed: bytes, cache: list[Any]) -> None:
        # What the batch holds counts against the budget too.
        self.prompt_cache.insert(packed, cache, budget=self.prompt_cache_bytes - self.batch.prompt_cache_nbytes)

    def close(self) -> None:
        self.batch.close()
        self.active.clear()
        self.model = self.tokenizer = self.batch = self.prompt_cache = None

    def status(self) -> dict[str, Any]:
        disk = self.shelf.status() if self.shelf is not None else {"entries": 0, "bytes": 0}
        return {
            "name": self.name,
            "path": self.path,
            "memory_bytes": self.nbytes,
            "prompt_cache_bytes": self.prompt_cache.nbytes,
            "prompt_cache_entries": len(self.prompt_cache),
            "disk_cache_bytes": disk["bytes"],
            "disk_cache_entries": disk["entries"],
            "active_sequences": len(self.active),
            "context_length": self.context_length,
            "loaded_at": self.loaded_at,
            "last_used": self.last_used,
        }


def _sampling_defaults(directory: Path) -> dict[str, float]:
    """The model's own sampling defaults from generation_config.json, where it has them."""
    defaults: dict[str, float] = {"temperature": DEFAULT_TEMPERATURE}
    try:
        config = json.loads((directory / "generation_config.json").read_text())
    except (OSError, ValueError):
        return defaults
    if config.get("do_sample") is False:
        return {"temperature": 0.0}
    for key in ("temperature", "top_p", "top_k", "min_p"):
        if isinstance(config.get(key), int | float):
            defaults[key] = config[key]
    return defaults


class ModelPool:
    def __init__(
        self,
        *,
        max_loaded: int,
        idle_unload_s: float | None,
        memory_limit_bytes: int | None,
        prompt_cache_bytes: int,
        prefill_step_size: int,
        disk: DiskCache | None = None,
    ) -> None:
        self._mlx_memory_limit = mx.get_memory_limit()  # MLX's own, for when the configured one goes
        self.slots: OrderedDict[str, Slot] = OrderedDict()  # least recently used first
        self.disk = disk
        self.configure(
            max_loaded=max_loaded,
            idle_unload_s=idle_unload_s,
            memory_limit_bytes=memory_limit_bytes,
            prompt_cache_bytes=prompt_cache_bytes,
        )
        self.prefill_step_size = prefill_step_size
        self.cache_stats = CacheStats()
        self._tokenizers: OrderedDict[str, Any] = OrderedDict()
        self.loads = 0
        self.unloads = 0

    def configure(
        self,
        *,
        max_loaded: int,
        idle_unload_s: float | None,
        memory_limit_bytes: int | None,
        prompt_cache_bytes: int,
        disk_cache_bytes: int | None = None,
    ) -> None:
        """The limits, at start or changed live: idle models beyond new, lower ones are unloaded at
        once, busy ones as soon as they are idle; prompt caches over a lowered budget shrink at once."""
        self.max_loaded = max(1, max_loaded)
        self.idle_unload_s = idle_unload_s
        self.memory_limit_bytes = memory_limit_bytes
        mx.set_memory_limit(memory_limit_bytes or self._mlx_memory_limit)
        self.prompt_cache_bytes = prompt_cache_bytes
        for slot in self.slots.values():
            slot.prompt_cache_bytes = prompt_cache_bytes
            slot.prompt_cache.shrink(prompt_cache_bytes - slot.batch.prompt_cache_nbytes)
        if self.disk is not None and disk_cache_bytes is not None:
            self.disk.configure(disk_cache_bytes)

    def limits(self) -> dict[str, Any]:
        return {
            "max_loaded_models": self.max_loaded,
            "idle_unload_s": self.idle_unload_s or 0,
            "memory_limit_bytes": self.memory_limit_bytes,
            "prompt_cache_bytes": self.prompt_cache_bytes,
            "disk_cache_bytes": self.disk.max_bytes if self.disk is not None else 0,
        }

    def get(self, path: str) -> Slot | None:
        slot = self.slots.get(path)
        if slot is not None:
            self.slots.move_to_end(path)
            slot.last_used = time.time()
        return slot

    def has_room(self) -> bool:
        """Whether a model can be loaded now: a free place, or an idle model to evict."""
        return len(self.slots) < self.max_loaded or any(not s.active for s in self.slots.values())

    def load(self, name: str, path: str) -> Slot:
        """Load `path` (already loaded: reuse it), evicting idle models to make room."""
        slot = self.get(path)
        if slot is not None:
            return slot
        directory = resolve(path)
        while len(self.slots) >= self.max_loaded and self._evict_one():
            pass
        if self.memory_limit_bytes is not None:
            need = sum(f.stat().st_size for f in directory.glob("*.safetensors"))
            while self.slots and self.loaded_bytes() + need > self.memory_limit_bytes and self._evict_one():
                pass
        started = time.monotonic()
        try:
            slot = Slot(
                name,
                path,
                directory,
                prompt_cache_bytes=self.prompt_cache_bytes,
                prefill_step_size=self.prefill_step_size,
                stats=self.cache_stats,
                disk=self.disk,
            )
        except ModelUnavailable:
            raise
        except Exception as e:
            raise ModelUnavailable(f"model {name!r} did not load: {e}") from e
        log.info("loaded %s from %s in %.1f s", name, directory, time.monotonic() - started)
        self.slots[path] = slot
        self._tokenizers.pop(path, None)
        self.loads += 1
        return slot

    def unload(self, path: str) -> str:
        slot = self.slots.get(path)
        if slot is None:
            return "not_loaded"
        if slot.active:
            slot.unload_requested = True
            return "unloading"
        self._drop(path)
        return "unloaded"

    def release(self, slot: Slot) -> None:
        """Called when a sequence leaves: carry out an unload that waited for the model to idle."""
        if slot.unload_requested and not slot.active and self.slots.get(slot.path) is slot:
            self._drop(slot.path)

    def evict_idle(self, now: float) -> None:
        """Unload the models idle for longer than idle_unload_s, and idle ones over the limits."""
        if self.idle_unload_s is not None:
            for path, slot in list(self.slots.items()):
                if not slot.active and now - slot.last_used > self.idle_unload_s:
                    self._drop(path)
        while len(self.slots) > self.max_loaded and self._evict_one():
            pass
        limit = self.memory_limit_bytes
        while limit is not None and self.loaded_bytes() > limit and self._evict_one():
            pass

    def tokenizer(self, path: str):
        """The tokenizer of `path`, without loading the weights when the model is not loaded."""
        slot = self.slots.get(path)
        if slot is not None:
            return slot.tokenizer
        tokenizer = self._tokenizers.get(path)
        if tokenizer is None:
            directory = resolve(path)
            try:
                tokenizer = load_tokenizer(directory)
            except Exception as e:
                raise ModelUnavailable(f"the tokenizer of {path!r} did not load: {e}") from e
            self._tokenizers[path] = tokenizer
            if len(self._tokenizers) > self.max_loaded:
                self._tokenizers.popitem(last=False)
        return tokenizer

    def loaded_bytes(self) -> int:
        return sum(s.nbytes for s in self.slots.values())

    def _evict_one(self) -> bool:
        for path, slot in self.slots.items():
            if not slot.active:
                self._drop(path)
                return True
        return False

    def _drop(self, path: str) -> None:
        slot = self.slots.pop(path)
        log.info("unloading %s", slot.name)
        slot.close()
        self.unloads += 1
        # Dropping the references hands the weights to MLX's buffer cache; clear it to give the
        # memory back to the system.
        gc.collect()
        mx.clear_cache()
