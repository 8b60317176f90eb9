"""One daemon per home: the serving process holds an flock on `<home>/mlxgw.lock` for its whole life.

The lock, not the pid file, says whether a daemon runs: the kernel drops it when the process dies,
however it dies, so a crash never leaves a "running" daemon behind and a recycled pid never looks
like one. The lock file's content tells where its holder listens (JSON: pid, host, port, started),
written once it does; `<home>/mlxgw.pid` holds just the pid, for people and scripts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mlxgw import paths
from mlxgw.errors import MlxgwError
from mlxgw.fsutil import flock_within

LOCK_NAME = "mlxgw.lock"
# `holder()` takes the lock for a few microseconds to test it: a starting daemon must not mistake
# such a probe for another daemon, so it keeps trying for a moment.
ACQUIRE_WAIT_S = 2.0
READ_TRIES = 20


@dataclass(frozen=True)
class DaemonInfo:
    pid: int
    host: str | None = None  # None until the daemon listens
    port: int | None = None
    started: float | None = None  # epoch seconds

    @property
    def listening(self) -> bool:
        return self.port is not None

    @property
    def url(self) -> str:
        return url_for(self.host or "127.0.0.1", self.port)


def url_for(host: str, port: int | None) -> str:
    """The URL a client on this machine reaches a daemon bound to host:port at."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # a daemon on every address answers on loopback too
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def lock_path() -> Path:
    return paths.home() / LOCK_NAME


class ServeLock:
    """Held by `mlxgw serve` from before it binds until it has drained and closed everything."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, wait_s: float = ACQUIRE_WAIT_S) -> ServeLock:
        fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
        if not flock_within(fd, wait_s):
            os.close(fd)
            raise MlxgwError(f"{describe(holder())}; stop it with `mlxgw stop`")
        lock = cls(fd)
        lock._write(DaemonInfo(os.getpid()))
        paths.pid_path().write_text(f"{os.getpid()}\n")
        return lock

    def announce(self, host: str, port: int) -> None:
        """Tell `mlxgw start` and `status` that the daemon now listens, and where."""
        self._write(DaemonInfo(os.getpid(), host, port, time.time()))

    def _write(self, info: DaemonInfo) -> None:
        data = json.dumps(asdict(info)).encode()
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    def release(self) -> None:
        pid_file = paths.pid_path()
        with contextlib.suppress(OSError, ValueError):
            if int(pid_file.read_text()) == os.getpid():
                pid_file.unlink()
        os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the descriptor drops the lock

    def __enter__(self) -> ServeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder() -> DaemonInfo | None:
    """The daemon serving this home, or None when none holds the lock."""
    try:
        fd = os.open(lock_path(), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read(fd: int) -> DaemonInfo:
    # The holder rewrites the file in place; a read can catch it half-written, so read again.
    for _ in range(READ_TRIES):
        try:
            return DaemonInfo(**json.loads(os.pread(fd, 4096, 0)))
        except (ValueError, TypeError):
            time.sleep(0.01)
    with contextlib.suppress(OSError, ValueError):
        return DaemonInfo(int(paths.pid_path().read_text()))
    raise MlxgwError(f"a daemon holds {lock_path()} but does not say who it is")


def clean_stale_pid_file() -> int | None:
    """Remove a pid file that no daemon stands behind; return the pid it named."""
    pid_file = paths.pid_path()
    if not pid_file.exists() or holder() is not None:
        return None
    try:
        pid = int(pid_file.read_text().strip() or 0)
    except (OSError, ValueError):
        pid = 0
    pid_file.unlink(missing_ok=True)
    return pid


def describe(info: DaemonInfo | None) -> str:
    if info is None:
        return "mlxgw is not running"
    where = f" at {info.url}" if info.listening else " (starting)"
    return f"mlxgw is already running for {paths.home()} (pid {info.pid}{where})"
