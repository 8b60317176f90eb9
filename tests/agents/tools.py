"""The agent CLIs the tests drive, pinned, installed with the machine's npm into `.tools/npm/` (ignored
by git) on first use and reused after: reinstalled when a pin changes or an installed one fails to run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from mlxgw.fsutil import write_atomic
from tests.installs import SetupError, installing, run_install

ROOT = Path(__file__).resolve().parents[2]
PREFIX = ROOT / ".tools" / "npm"

# package -> (pinned version, its command, what `COMMAND --version` prints)
PINS = {
    "@openai/codex": ("0.169.0", "codex", "codex-cli 0.169.0"),
    "@anthropic-ai/claude-code": ("2.1.332", "claude", "2.1.332 (Claude Code)"),
}


def installed() -> dict[str, Path]:
    """Each pinned CLI's command path, installing first if any is missing, outdated or broken."""
    with installing(PREFIX.parent / "npm.lock"):
        if _broken():
            _npm_install()
            problem = _broken()
            if problem:
                raise SetupError(f"npm installed the agent CLIs into {PREFIX}, but {problem}")
    return {command: PREFIX / "node_modules" / ".bin" / command for _, command, _ in PINS.values()}


def _broken() -> str | None:
    """Why the installed set is not the pinned one (None: it is, and each CLI runs)."""
    for package, (version, command, banner) in PINS.items():
        manifest = PREFIX / "node_modules" / package / "package.json"
        try:
            found = json.loads(manifest.read_text()).get("version")
        except (OSError, ValueError):
            return f"{package} is not installed"
        if found != version:
            return f"{package} is {found}, the pin is {version}"
        # Both ship their real binary in a per-platform optional dependency; running the command
        # is what proves the right one arrived.
        try:
            ran = subprocess.run([str(PREFIX / "node_modules" / ".bin" / command), "--version"],
                                 capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"`{command} --version` failed: {e}"
        if ran.returncode != 0 or ran.stdout.strip() != banner:
            said = (ran.stdout + ran.stderr).strip().splitlines()[-1:] or ["nothing"]
            return (f"`{command} --version` exited {ran.returncode} saying {said[0]!r} (its platform package "
                    f"for {os.uname().sysname}/{os.uname().machine} may be missing)")
    return None


def _npm_install() -> None:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SetupError("the agent tests need Node.js and npm on PATH (to install "
                         + ", ".join(f"{p}@{v}" for p, (v, _, _) in PINS.items()) + "); install Node.js 18+")
    PREFIX.mkdir(parents=True, exist_ok=True)
    manifest = {"private": True, "dependencies": {p: v for p, (v, _, _) in PINS.items()}}
    write_atomic(PREFIX / "package.json", json.dumps(manifest, indent=2) + "\n")
    # --include=optional: a user config that omits optional dependencies would leave out the
    # platform binaries, which are all these packages really are.
    cmd = [npm, "install", "--no-audit", "--no-fund", "--no-update-notifier", "--include=optional",
           "--loglevel=error"]
    run_install(cmd, f"npm install` in `{PREFIX}", cwd=PREFIX)
