"""What the daemon tests share: the CLI in a subprocess, free ports, bounded waits, a fake upstream
served from its own thread (so that blocking CLI calls in the test cannot stall it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

from fakes.upstream import FakeOpenAI, Reply
from mlxgw import config, paths
from mlxgw.daemon.lock import DaemonInfo, holder

MLXGW = [sys.executable, "-m", "mlxgw"]


def run_cli(*args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`mlxgw ARGS` in a subprocess, with this test's home (the environment carries MLXGW_HOME)."""
    return subprocess.run([*MLXGW, *args], capture_output=True, text=True, input=input, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def use_port(port: int) -> None:
    """Point this home's config at `port`, so no test ever meets a real daemon on 8421."""
    path = paths.config_path()
    config.ensure_config(path)
    text = path.read_text()
    assert "port = 8421" in text
    path.write_text(text.replace("port = 8421", f"port = {port}", 1))


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Daemons:
    """Starts daemons with `mlxgw start`; at teardown stops each (`mlxgw stop`), killing it on failure."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def start(self, *args: str) -> DaemonInfo:
        started = run_cli("start", *args)
        info = holder()
        if info is not None:
            self.pids.append(info.pid)
        assert started.returncode == 0, started.stderr
        assert info is not None and info.listening
        return info

    def teardown(self) -> None:
        if holder() is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                run_cli("stop", "--timeout", "5", timeout=30)
        for pid in self.pids:
            with contextlib.suppress(AssertionError):
                wait_until(lambda pid=pid: not alive(pid), timeout=5)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def upstream_in_thread(*replies: Reply, **kwargs) -> Iterator[FakeOpenAI]:
    """A FakeOpenAI running on its own event loop in a background thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-upstream", daemon=True)
    thread.start()
    fake = FakeOpenAI(*replies, **kwargs)
    try:
        asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
        yield fake
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(fake.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
