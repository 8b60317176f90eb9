"""Starting and stopping the processes a benchmark measures: the fake upstream, `mlxgw serve`,
mlx_lm.server. Every wait is bounded; every process is stopped (TERM, then KILL) on the way out."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
MLXGW = str(Path(sys.executable).with_name("mlxgw"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def spawn(name: str, argv: list[str], *, env: dict[str, str] | None = None, log_dir: Path, cwd: Path = ROOT,
          unset: tuple[str, ...] = ()) -> Proc:
    log_path = log_dir / f"{name}.log"
    child_env = {k: v for k, v in os.environ.items() if k not in unset}
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns it; closed below once it has it
    try:
        popen = subprocess.Popen(
            argv, cwd=cwd, env={**child_env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    finally:
        log.close()
    return Proc(name, popen, log_path)


def wait_http(proc: Proc, url: str, timeout: float = 60.0) -> None:
    """Until `url` answers (any status), the process dies, or `timeout` passes."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout:g} s:\n{proc.log_tail()}")


@contextlib.contextmanager
def upstream(log_dir: Path, *, words: int = 20, chunk_delay_s: float = 0.0) -> Iterator[dict[str, str]]:
    """Fake OpenAI and Anthropic upstreams in a process of their own: {"openai": url, "anthropic": url}."""
    ready = log_dir / f"upstream-{os.getpid()}-{time.monotonic_ns()}.json"
    argv = [sys.executable, "-m", "bench.upstream", "--ready-file", str(ready), "--words", str(words),
            "--chunk-delay-s", str(chunk_delay_s)]
    proc = spawn("upstream", argv, log_dir=log_dir)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fake upstream did not start:\n{proc.log_tail()}")
            time.sleep(0.05)
        urls = json.loads(ready.read_text())
        yield {**urls, "pid": str(proc.pid)}
    finally:
        proc.stop()
        ready.unlink(missing_ok=True)


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def write_config(home: Path, *, port: int, server: dict | None = None, local: dict | None = None,
                 backends: dict[str, dict] | None = None, mappings: list[dict] | None = None) -> Path:
    lines = ["[server]", 'host = "127.0.0.1"', f"port = {port}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in (server or {}).items()]
    if local:
        lines += ["", "[local]"] + [f"{k} = {toml_value(v)}" for k, v in local.items()]
    for name, table in (backends or {}).items():
        lines += ["", f"[backends.{name}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
    for m in mappings or []:
        lines += ["", "[[mappings]]"] + [f"{k} = {toml_value(v)}" for k, v in m.items()]
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Gateway:
    url: str
    proc: Proc
    home: Path


@contextlib.contextmanager
def gateway(log_dir: Path, *, profile: Path | None = None, env: dict[str, str] | None = None, **config) -> Iterator[Gateway]:
    """`mlxgw serve` on a free port with a fresh MLXGW_HOME holding `config` (see write_config)."""
    with tempfile.TemporaryDirectory(prefix="mlxgw-bench-home-") as tmp:
        home = Path(tmp) / "home"
        port = free_port()
        write_config(home, port=port, **config)
        argv = [MLXGW, "serve", "--port", str(port)]
        if profile is not None:  # cProfile writes its stats when serve returns (SIGINT/SIGTERM)
            argv = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "mlxgw", "serve", "--port", str(port)]
        # Only this home counts: an MLXGW_CONFIG or MLXGW_SECRET_KEY in our environment would point
        # the daemon elsewhere.
        proc = spawn("mlxgw", argv, log_dir=log_dir, env={"MLXGW_HOME": str(home), "HF_HUB_OFFLINE": "1", **(env or {})},
                     unset=("MLXGW_CONFIG", "MLXGW_SECRET_KEY"))
        try:
            wait_http(proc, f"http://127.0.0.1:{port}/health", 60)
            yield Gateway(f"http://127.0.0.1:{port}", proc, home)
        finally:
            if profile is not None and proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(30)
            proc.stop(timeout=30)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in bytes and the open file descriptors of a process, from /proc."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


async def get_json(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as r:
        return await r.json()
