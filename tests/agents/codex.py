"""Running the real Codex CLI against a local address: its home (`CODEX_HOME`) in a temporary folder,
a provider block pointing at the address, and no way out to the network."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

KEY_ENV = "MLXGW_TEST_KEY"
RUN_TIMEOUT_S = 90.0

# Codex's own retries would repeat a failed turn (and double what the fakes record); its idle timeout
# bounds a stuck stream. Update checks, analytics and plugins are what it otherwise reaches out for
# (github.com, api.github.com, chatgpt.com, ab.chatgpt.com, seen through the proxy below).
CONFIG = """\
model = "{model}"
model_provider = "mlxgw"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[model_providers.mlxgw]
name = "mlxgw"
base_url = "{base_url}"
env_key = "{key_env}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = {idle_timeout_ms}

[analytics]
enabled = false

[features]
plugins = false
"""


def write_home(home: Path, base_url: str, *, model: str = "gpt-test", idle_timeout_ms: int = 20000) -> Path:
    """A CODEX_HOME whose config sends every turn to `base_url` (ending in /v1) over the Responses wire;
    Codex gives up on a stream that brings no event for `idle_timeout_ms`."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(CONFIG.format(model=model, base_url=base_url, key_env=KEY_ENV,
                                                    idle_timeout_ms=idle_timeout_ms))
    return home


class Egress:
    """An HTTP proxy on 127.0.0.1 that refuses everything and remembers what was asked of it. Codex
    runs with it as its proxy (loopback excepted), so a request meant for the internet never leaves
    the machine and shows up in `attempts` instead."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            line = await asyncio.wait_for(reader.readline(), 10)
            self.attempts.append(line.decode(errors="replace").strip())
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> Egress:
        self._server = await asyncio.start_server(self._refuse, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@dataclass
class CodexRun:
    returncode: int
    stdout: str  # `codex exec` prints only the final answer here
    stderr: str  # the transcript: the commands it ran, warnings, errors

    def explain(self) -> str:
        return f"codex exited {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr[-4000:]}"


async def run_exec(codex: Path, home: Path, prompt: str, *, egress: Egress, cwd: Path, key: str = "sk-codex-test",
                   timeout: float = RUN_TIMEOUT_S, subcommand: tuple[str, ...] = ()) -> CodexRun:
    """`codex exec --skip-git-repo-check [SUBCOMMAND...] PROMPT` (e.g. `resume --last`), killed after
    `timeout`, off the event loop's thread so the servers it talks to (in this process) keep answering."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home.parent),  # nothing of the user's own home is read or written
        "CODEX_HOME": str(home),
        KEY_ENV: key,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        **{name: egress.url for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy",
                                         "all_proxy")},
    }
    proc = await asyncio.create_subprocess_exec(
        str(codex), "exec", "--skip-git-repo-check", *subcommand, prompt, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        err += f"\n[killed after {timeout} s]".encode()
    return CodexRun(proc.returncode if proc.returncode is not None else -9, out.decode(errors="replace"),
                    err.decode(errors="replace"))


@contextlib.asynccontextmanager
async def sandbox(tmp_path: Path, base_url: str, **kw) -> AsyncIterator[tuple[Path, Path, Egress]]:
    """(CODEX_HOME, a work folder, the refusing proxy); on the way out, asserts Codex reached for
    nothing outside the machine."""
    home = write_home(tmp_path / "codex-home" / ".codex", base_url, **kw)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    async with Egress() as egress:
        yield home, work, egress
    assert not egress.attempts, f"Codex tried to reach the network: {egress.attempts}"
