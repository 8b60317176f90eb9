"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
