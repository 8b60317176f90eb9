"""A second mlxgw for the first to use as a backend: a real `mlxgw serve` subprocess in its own
home, with its own config and a client key made for the first gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

MLXGW = [sys.executable, "-m", "mlxgw"]
START_S = 60.0  # a Python start and the store's creation on a busy 2-core machine


@dataclass
class Peer:
    url: str
    key: str  # the client key it made for the gateway in front


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(port: int, backends: dict[str, tuple[str, str]], mappings: list[dict]) -> str:
    lines = ["[server]", 'host = "127.0.0.1"', f"port = {port}", "keepalive_s = 0"]
    for name, (btype, url) in backends.items():
        lines += ["", f"[backends.{name}]", f'type = "{btype}"', f'base_url = "{url}"', f'api_key_env = "{name.upper()}_KEY"']
        lines += ["max_tries = 2", "connect_timeout_s = 2", "first_byte_timeout_s = 5", "idle_timeout_s = 5"]
    for m in mappings:
        lines += ["", "[[mappings]]", *(f"{k} = {json.dumps(v)}" for k, v in m.items())]
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def peer_gateway(
    home: Path, backends: dict[str, tuple[str, str]], mappings: list[dict], keys: dict[str, str], *, key_args: tuple = ()
) -> AsyncIterator[Peer]:
    """`mlxgw serve` in `home`; `keys` are the upstream keys, by backend name."""
    home.mkdir(parents=True)
    port = _free_port()
    (home / "config.toml").write_text(_config(port, backends, mappings))
    env = {**os.environ, "MLXGW_HOME": str(home), **{f"{n.upper()}_KEY": k for n, k in keys.items()}}
    env.pop("MLXGW_CONFIG", None)
    made = subprocess.run([*MLXGW, "keys", "create", "front", "--json", *key_args], env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["key"]
    log = (home / "serve.out").open("w")
    proc = subprocess.Popen([*MLXGW, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        await _until_healthy(url, proc, home)
        yield Peer(url, key)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _until_healthy(url: str, proc: subprocess.Popen, home: Path) -> None:
    deadline = time.monotonic() + START_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"the second mlxgw exited: {(home / 'serve.out').read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url + "/health") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise AssertionError(f"the second mlxgw did not answer /health within {START_S:g} s")
