"""Starting the daemon in the background, stopping it gracefully, and asking how it is."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from mlxgw import logs, paths
from mlxgw.daemon.lock import DaemonInfo, clean_stale_pid_file, describe, holder
from mlxgw.errors import MlxgwError

START_WAIT_S = 60.0
# After the drain: what the daemon needs to stop the local worker and flush the request log.
STOP_GRACE_S = 15.0
POLL_S = 0.05
TAIL_LINES = 12


class StartFailed(MlxgwError):
    """The daemon did not come up; `output` holds the last lines it wrote."""

    def __init__(self, message: str, output: list[str]) -> None:
        super().__init__(message)
        self.output = output


@dataclass(frozen=True)
class Stopped:
    info: DaemonInfo
    # "drained": it finished what was in flight; "cut": requests still running after the timeout were
    # closed; "killed": it did not exit even then and was killed (its pid file was cleaned).
    how: str
    seconds: float


def serve_argv(host: str | None, port: int | None, insecure: bool, drain_s: float | None) -> list[str]:
    # The same interpreter and package as this CLI, whatever `mlxgw` is first on PATH.
    argv = [sys.executable, "-m", "mlxgw", "serve"]
    if host:
        argv += ["--host", host]
    if port:
        argv += ["--port", str(port)]
    if insecure:
        argv.append("--insecure")
    if drain_s is not None:
        argv += ["--drain-timeout", f"{drain_s:g}"]
    return argv


def start(argv: list[str], *, wait_s: float = START_WAIT_S) -> DaemonInfo:
    """Run `argv` (a `serve` command line) detached — its own session, output appended to the
    daemon's output file — and return once it holds the lock, listens and answers /health."""
    running = holder()
    if running is not None:
        raise MlxgwError(describe(running))
    clean_stale_pid_file()
    out_path = logs.output_path()
    offset = out_path.stat().st_size if out_path.exists() else 0
    home = paths.home().resolve()
    # The daemon works from its home so that it pins no directory of the caller's.
    env = {**os.environ, "MLXGW_HOME": str(home)}
    with open(out_path, "ab") as sink:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, cwd=home, env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            output = _output_since(offset)
            reason = output[-1].removeprefix("error: ") if output else f"it exited with status {code}"
            raise StartFailed(f"the daemon did not start: {reason}", output)
        info = holder()
        if info is not None and info.pid == process.pid and info.listening and _answers(info.url + "/health"):
            return info
        time.sleep(POLL_S)
    raise StartFailed(
        f"the daemon (pid {process.pid}) did not answer within {wait_s:g} s; it may still be starting: "
        "see `mlxgw logs` or `mlxgw status`",
        _output_since(offset),
    )


def stop(*, timeout_s: float) -> Stopped | None:
    """SIGTERM the daemon and wait for it to drain and exit. None when none was running."""
    info = holder()
    if info is None:
        clean_stale_pid_file()
        return None
    began = time.monotonic()
    _signal(info.pid, signal.SIGTERM)
    if _wait_exit(info.pid, timeout_s):
        return Stopped(info, "drained", time.monotonic() - began)
    _signal(info.pid, signal.SIGTERM)  # a second signal: the daemon closes what is still open
    if _wait_exit(info.pid, STOP_GRACE_S):
        return Stopped(info, "cut", time.monotonic() - began)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # A detached daemon leads its own process group: take its worker along.
        if os.getpgid(info.pid) == info.pid:
            os.killpg(info.pid, signal.SIGKILL)
        else:
            os.kill(info.pid, signal.SIGKILL)
    _wait_exit(info.pid, 5.0)
    clean_stale_pid_file()
    return Stopped(info, "killed", time.monotonic() - began)


def status() -> dict[str, Any]:
    """What `mlxgw status --json` prints: the lock holder, and what the daemon says about itself."""
    stale = clean_stale_pid_file()
    info = holder()
    if info is None:
        return {"running": False, "pid": None, "host": None, "port": None, "stale_pid_removed": stale}
    result: dict[str, Any] = {
        "running": True,
        "pid": info.pid,
        "host": info.host,
        "port": info.port,
        "url": info.url if info.listening else None,
        "answering": False,
    }
    if info.listening:
        reported = _get_json(info.url + "/mlxgw/status")
        if reported is not None:
            result["answering"] = True
            result.update({k: reported.get(k) for k in ("version", "uptime_s", "breakers", "backend_errors", "local")})
    return result


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_exit(pid: int, seconds: float) -> bool:
    """Wait until `pid` no longer holds the lock: it has closed everything and is on its way out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        info = holder()
        if info is None or info.pid != pid:
            return True
        time.sleep(POLL_S)
    return False


def _answers(url: str) -> bool:
    return _get_json(url, timeout=2.0) is not None


def _get_json(url: str, timeout: float = 5.0) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None


def _output_since(offset: int) -> list[str]:
    path = logs.output_path()
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-TAIL_LINES:]
