"""Long prompts' KV caches on disk, so that a daemon restart, a worker crash or a model unload does
not cost a full prefill of a prompt seen before.

    <home>/cache/.lock                              held while entries are added or removed
    <home>/cache/<model key>/model.json             the model the folder is for (name, path)
    <home>/cache/<model key>/<digest>.safetensors   a KV cache, as mlx-lm's save_prompt_cache writes it
    <home>/cache/<model key>/<digest>.tokens        the tokens it holds, packed; its mtime is the
                                                    entry's last use

The model key is a digest of the model's config.json and its weight files' names, sizes and times:
a model changed on disk gets a new folder, and the old one ages out. An entry exists once its
tokens file does (written last, removed first). Beyond the size budget the least recently used
entries go. The worker writes on a thread of its own, from arrays the engine thread has already
evaluated (MLX work belongs to that thread); `mlxgw models cache --clear` removes entries under the
same lock, and a worker that finds an entry gone takes it for a miss.

Standard library only at import: the CLI reads and clears the cache without loading MLX.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxgw import fsutil
from mlxgw.worker import tokens as tk

log = logging.getLogger("mlxgw.worker")

TOKENS = ".tokens"
KV = ".safetensors"
MODEL_FILE = "model.json"
LOCK_FILE = ".lock"
LOCK_WAIT_S = 30.0
# Every lookup reads the model's folder: a bound on its entries keeps that quick.
MAX_ENTRIES_PER_MODEL = 256


def model_key(directory: Path) -> str:
    """The name of a model's folder in the cache, from what makes its KV caches what they are."""
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for weights in sorted(directory.glob("*.safetensors")):
        stat = weights.stat()
        digest.update(f"\0{weights.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


@dataclass
class EntryFile:
    folder: Path
    digest: str
    tokens: int
    nbytes: int  # both files
    used: float  # the tokens file's mtime

    def paths(self) -> tuple[Path, Path]:
        return self.folder / (self.digest + TOKENS), self.folder / (self.digest + KV)

    def remove(self) -> None:
        for path in self.paths():  # the tokens file first: the entry is gone at once
            path.unlink(missing_ok=True)


def _entries(folder: Path) -> list[EntryFile]:
    """The complete entries of one model's folder."""
    found = []
    with contextlib.suppress(FileNotFoundError):
        for item in os.scandir(folder):
            if not item.name.endswith(TOKENS) or item.name.startswith("."):
                continue
            digest = item.name[: -len(TOKENS)]
            try:
                meta = item.stat()
                kv = (folder / (digest + KV)).stat()
            except FileNotFoundError:
                continue  # removed meanwhile
            found.append(EntryFile(folder, digest, meta.st_size // tk.WIDTH, meta.st_size + kv.st_size, meta.st_mtime))
    return found


def _folders(root: Path) -> list[Path]:
    with contextlib.suppress(FileNotFoundError):
        return sorted(Path(item.path) for item in os.scandir(root) if item.is_dir() and not item.name.startswith("."))
    return []


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    with fsutil.exclusive_lock(root / LOCK_FILE, wait_s=LOCK_WAIT_S, busy=f"the prompt cache in {root} is busy"):
        yield


def summary(root: Path) -> list[dict[str, Any]]:
    """Each model's entries: what `mlxgw models cache` shows."""
    models = []
    for folder in _folders(root):
        entries = _entries(folder)
        try:
            about = json.loads((folder / MODEL_FILE).read_text())
        except (OSError, ValueError):
            about = {}
        models.append(
            {
                "model": about.get("name") or folder.name,
                "path": about.get("path"),
                "key": folder.name,
                "entries": len(entries),
                "bytes": sum(e.nbytes for e in entries),
                "longest_tokens": max((e.tokens for e in entries), default=0),
                "last_used": max((e.used for e in entries), default=None),
            }
        )
    return models


def clear(root: Path) -> tuple[int, int]:
    """Remove every entry (and anything half-written); returns the entries and bytes removed."""
    if not root.is_dir():
        return 0, 0
    with _locked(root):
        entries = [e for folder in _folders(root) for e in _entries(folder)]
        for entry in entries:
            entry.remove()
        for folder in _folders(root):
            shutil.rmtree(folder, ignore_errors=True)
    return len(entries), sum(e.nbytes for e in entries)


def _enforce(root: Path, max_bytes: int) -> int:
    """Remove the least recently used entries beyond the budget and the per-model bound (under the
    lock); returns how many went."""
    everything, removed = [], 0
    for folder in _folders(root):
        entries = sorted(_entries(folder), key=lambda e: e.used)
        while len(entries) > MAX_ENTRIES_PER_MODEL:
            entries.pop(0).remove()
            removed += 1
        everything += entries
    everything.sort(key=lambda e: e.used)
    total = sum(e.nbytes for e in everything)
    while everything and total > max_bytes:
        victim = everything.pop(0)
        victim.remove()
        total -= victim.nbytes
        removed += 1
    return removed


class DiskCache:
    """The worker's side of the disk cache: one writer thread for every model's entries."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.saves = 0
        self.save_failures = 0
        self.evictions = 0
        self._jobs: list[Callable[[], None]] = []
        self._pending = 0
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="prompt-cache-writer", daemon=True)
        self._thread.start()

    def shelf(self, directory: Path, name: str, path: str, *, trimmable: bool) -> Shelf:
        key = model_key(directory)
        return Shelf(self, self.root / key, {"name": name, "path": path, "key": key}, trimmable=trimmable)

    def configure(self, max_bytes: int) -> None:
        """A new budget, live; a lowered one is enforced at once (0: nothing more is written or read)."""
        self.max_bytes = max_bytes
        if max_bytes > 0:
            self.submit(self._enforce)

    def _enforce(self) -> None:
        with _locked(self.root):
            self.evictions += _enforce(self.root, self.max_bytes)

    def submit(self, job: Callable[[], None]) -> None:
        with self._changed:
            self._jobs.append(job)
            self._pending += 1
            self._changed.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until every write asked for so far is on disk; False if that took longer than `timeout`."""
        with self._changed:
            return self._changed.wait_for(lambda: self._pending == 0, timeout)

    def status(self) -> dict[str, Any]:
        entries = [e for folder in _folders(self.root) for e in _entries(folder)]
        return {
            "entries": len(entries),
            "bytes": sum(e.nbytes for e in entries),
            "max_bytes": self.max_bytes,
            "pending_writes": self._pending,
            "saves": self.saves,
            "save_failures": self.save_failures,
            "evictions": self.evictions,
        }

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._jobs)
                job = self._jobs.pop(0)
            try:
                job()
            except Exception:  # a full disk, a folder cleared meanwhile: the entry is just not kept
                log.exception("saving a prompt cache failed")
                self.save_failures += 1
            with self._changed:
                self._pending -= 1
                self._changed.notify_all()


class Shelf:
    """One model's entries on disk."""

    def __init__(self, disk: DiskCache, folder: Path, about: dict[str, str], *, trimmable: bool) -> None:
        self._disk = disk
        self.folder = folder
        self._about = about
        self._trimmable = trimmable
        self._tokens: dict[str, bytes] = {}  # digest -> tokens: an entry's tokens never change

    def best(
        self, prompt: bytes, reusable: Callable[[int, int, int, bool], int]
    ) -> tuple[str | None, bytes, int]:
        """The entry that serves most of `prompt`: its digest, its tokens, and how many of the
        prompt's tokens it serves (`reusable` says, given the entry's length, the shared prefix,
        the prompt's length and whether the model's caches can be trimmed)."""
        best, best_n = None, 0
        seen = {}
        for entry in _entries(self.folder):
            packed = self._tokens.get(entry.digest)
            if packed is None:
                try:
                    packed = entry.paths()[0].read_bytes()
                except FileNotFoundError:
                    continue
            seen[entry.digest] = packed
            n = reusable(tk.count(packed), tk.common_prefix(packed, prompt), tk.count(prompt), self._trimmable)
            if n > best_n:
                best, best_n = entry.digest, n
        self._tokens = seen
        return best, seen.get(best, b""), best_n

    def status(self) -> dict[str, int]:
        entries = _entries(self.folder)
        return {"entries": len(entries), "bytes": sum(e.nbytes for e in entries)}

    def load(self, digest: str) -> list[Any] | None:
        """The entry's KV cache, or None if it is gone or unreadable (then it is removed). Called on
        the engine thread: it reads the arrays at once, so that a damaged file fails here, not in
        the batch, and an entry removed meanwhile (LRU, --clear) is no longer needed."""
        import mlx.core as mx
        from mlx_lm.models.cache import load_prompt_cache

        tokens_path, kv_path = self.folder / (digest + TOKENS), self.folder / (digest + KV)
        try:
            cache, meta = load_prompt_cache(str(kv_path), return_metadata=True)
            if meta.get("model") != self._about["key"] or meta.get("tokens") != digest:
                raise ValueError(f"it was written for {meta.get('model')!r}, tokens {meta.get('tokens')!r}")
            mx.eval([c.state for c in cache])
            os.utime(tokens_path)  # its last use, for the LRU order
            return cache
        except FileNotFoundError:
            return None  # cleared meanwhile
        except Exception as e:
            log.warning("dropping the unreadable prompt cache %s: %s", kv_path, e)
            with contextlib.suppress(Exception), _locked(self._disk.root):
                EntryFile(self.folder, digest, 0, 0, 0).remove()
            return None

    def save(self, tokens: bytes, cache: list[Any]) -> None:
        """Write an entry in the background. `cache` must be evaluated and contiguous already."""
        kept = self.folder / (tk.digest(tokens) + TOKENS)
        with contextlib.suppress(FileNotFoundError):
            os.utime(kept)  # on disk already: now its last use
            return
        self._disk.submit(lambda: self._write(tokens, cache))

    def _write(self, tokens: bytes, cache: list[Any]) -> None:
        from mlx_lm.models.cache import save_prompt_cache

        disk = self._disk
        digest = tk.digest(tokens)
        self.folder.mkdir(parents=True, exist_ok=True)
        # Written outside the lock (it can take a while); only the rename into place holds it.
        temp = self.folder / f".{digest}.{os.getpid()}{KV}"
        try:
            save_prompt_cache(str(temp), cache, {"model": self._about["key"], "tokens": digest})
            with _locked(disk.root):
                self.folder.mkdir(parents=True, exist_ok=True)
                if not (self.folder / MODEL_FILE).exists():
                    fsutil.write_atomic(self.folder / MODEL_FILE, json.dumps(self._about) + "\n")
                os.replace(temp, self.folder / (digest + KV))
                fsutil.write_atomic(self.folder / (digest + TOKENS), tokens)
                if self._trimmable:
                    # An entry that is a prefix of this one is served by trimming this one.
                    for entry in _entries(self.folder):
                        if entry.digest != digest and entry.tokens < tk.count(tokens):
                            with contextlib.suppress(FileNotFoundError):
                                if tokens.startswith(entry.paths()[0].read_bytes()):
                                    entry.remove()
                disk.evictions += _enforce(disk.root, disk.max_bytes)
        finally:
            temp.unlink(missing_ok=True)
        disk.saves += 1
