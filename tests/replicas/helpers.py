"""Gateway replicas on one PostgreSQL store: each a real `mlxgw serve` subprocess in its own home,
sharing the store's URL and the secret key that encrypts credentials; their CLIs run as subprocesses."""

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
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import openai

MLXGW = [sys.executable, "-m", "mlxgw"]
START_S = 60.0  # a Python start on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Replica:
    name: str
    home: Path
    env: dict[str, str]
    port: int = field(default_factory=_free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, extra: str = "") -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {self.port}\nkeepalive_s = 0\nreplica = "{self.name}"\n{extra}'
        )

    async def cli(self, *args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        """`mlxgw ARGS` on this replica (its home, the shared store), off the event loop."""
        ran = await asyncio.to_thread(
            subprocess.run, [*MLXGW, *args], env={**self.env, **env}, capture_output=True, text=True, input=input,
            timeout=60,
        )
        assert ran.returncode == 0, (args, ran.stdout, ran.stderr)
        return ran

    def client(self, key: str = "none") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=20)


def replicas(tmp_path: Path, store_url: str, n: int = 2) -> list[Replica]:
    secret = subprocess.run([sys.executable, "-c", "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"],
                            capture_output=True, text=True, check=True).stdout.strip()
    out = []
    for i in range(n):
        home = tmp_path / f"replica{i}"
        env = {**os.environ, "MLXGW_HOME": str(home), "MLXGW_STORE_URL": store_url, "MLXGW_SECRET_KEY": secret}
        env.pop("MLXGW_CONFIG", None)
        out.append(Replica(f"gw{i}", home, env))
    return out


@contextlib.asynccontextmanager
async def serving(*reps: Replica) -> AsyncIterator[None]:
    """`mlxgw serve` for each replica, all started at once (on a fresh store they race to migrate)."""
    procs = []
    for r in reps:
        log = (r.home / "serve.out").open("w")
        procs.append((subprocess.Popen([*MLXGW, "serve"], env=r.env, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        await asyncio.gather(*(_until_healthy(r, p) for r, (p, _) in zip(reps, procs, strict=True)))
        yield
    finally:
        for proc, log in procs:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


async def _until_healthy(r: Replica, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"replica {r.name} exited: {(r.home / 'serve.out').read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(r.url + "/health") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise AssertionError(f"replica {r.name} not healthy within {START_S} s: {(r.home / 'serve.out').read_text()[-2000:]}")


async def until(predicate, timeout: float, what: str) -> float:
    """Poll the async `predicate` until it is true; returns the seconds it took."""
    start = time.monotonic()
    while not await predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def status_of(r: Replica, model: str, key: str = "none") -> int:
    async with r.client(key) as client:
        try:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        except openai.APIStatusError as e:
            return e.status_code
    return 200


def keys_of(ran: subprocess.CompletedProcess[str]) -> str:
    return json.loads(ran.stdout)["key"]
