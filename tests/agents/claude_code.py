"""Running the real Claude Code CLI (`claude -p`) against a local address: its config folder
(`CLAUDE_CONFIG_DIR`) and `HOME` in a temporary folder, everything it does not need turned off, and
no way out to the network (the refusing proxy of `tests.agents.codex`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.agents.codex import Egress

RUN_TIMEOUT_S = 90.0

# What Claude Code would otherwise reach for beyond its API: telemetry, error reports, update checks,
# feedback surveys, release notes and model metadata (all of them "non-essential traffic").
QUIET = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
    "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
}


@dataclass
class ClaudeRun:
    returncode: int
    stdout: str  # with --output-format json: one JSON object, the turn's result
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        """The `--output-format json` summary (`result`, `session_id`, `num_turns`, `usage`…)."""
        return json.loads(self.stdout)

    def explain(self) -> str:
        return f"claude exited {self.returncode}\n--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"


@dataclass
class Sandbox:
    home: Path  # HOME; CLAUDE_CONFIG_DIR is home/.claude
    work: Path  # the folder Claude Code runs in (its project: where --continue finds the session)
    egress: Egress
    base_url: str
    key: str
    extra_env: dict[str, str]

    async def run(self, claude: Path, prompt: str, *args: str, timeout: float = RUN_TIMEOUT_S) -> ClaudeRun:
        """`claude -p PROMPT --output-format json ARGS…`, killed after `timeout`, off the event loop's
        thread so that servers in this process keep answering."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),  # nothing of the user's own home is read or written
            "CLAUDE_CONFIG_DIR": str(self.home / ".claude"),
            "ANTHROPIC_BASE_URL": self.base_url,
            "ANTHROPIC_API_KEY": self.key,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            **{name: self.egress.url for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy",
                                                  "http_proxy", "all_proxy")},
            **QUIET,
            **self.extra_env,
        }
        proc = await asyncio.create_subprocess_exec(
            str(claude), "-p", prompt, "--output-format", "json", *args, cwd=self.work, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            err += f"\n[killed after {timeout} s]".encode()
        return ClaudeRun(proc.returncode if proc.returncode is not None else -9, out.decode(errors="replace"),
                         err.decode(errors="replace"))


@contextlib.asynccontextmanager
async def sandbox(tmp_path: Path, base_url: str, *, key: str = "sk-ant-claude-code-test",
                  **extra_env: str) -> AsyncIterator[Sandbox]:
    """A home, a work folder and the refusing proxy for Claude Code runs against `base_url` (no /v1);
    on the way out, asserts Claude Code reached for nothing outside the machine."""
    home = tmp_path / "claude-home"
    work = tmp_path / "work"
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    work.mkdir(exist_ok=True)
    async with Egress() as egress:
        yield Sandbox(home, work, egress, base_url, key, extra_env)
    assert not egress.attempts, f"Claude Code tried to reach the network: {egress.attempts}"
