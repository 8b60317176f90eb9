"""Atomic file writes (a reader sees the old file or the new one, never half of either) and an
exclusive lock between processes."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlxgw.errors import MlxgwError

LOCK_POLL_S = 0.01


def _temp_copy(path: Path, raw: bytes, mode: int) -> str:
    """A temporary file beside `path` holding `raw`, created with `mode`, flushed to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `path` through a temporary file in the same folder, created with `mode`."""
    tmp = _temp_copy(path, data.encode() if isinstance(data, str) else data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_atomic(path: Path, data: str, *, mode: int = 0o644) -> bool:
    """Create `path` whole with `data` unless it exists: never replaces a file that another process
    wrote meanwhile. Returns whether this call created it."""
    tmp = _temp_copy(path, data.encode(), mode)
    try:
        os.link(tmp, path)  # unlike a rename, a link fails when the target exists
    except FileExistsError:
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)
    return True


def create_private(path: Path, data: bytes) -> None:
    """Create a new file readable by its owner only; mode 0600 from the first byte, never chmod-ed later."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class LockBusy(MlxgwError):
    """Another process held a lock for longer than the caller would wait."""


@contextmanager
def exclusive_lock(path: Path, *, wait_s: float, busy: str) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created 0600 if missing) for the block. The kernel drops it
    when the process dies, however it dies. Raises LockBusy(`busy`) after waiting `wait_s`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not flock_within(fd, wait_s):
            raise LockBusy(busy)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def flock_within(fd: int, wait_s: float) -> bool:
    """Take an exclusive flock on `fd`, waiting up to `wait_s`; False if another holder kept it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(LOCK_POLL_S)
