"""Debian's Chromium for the dashboard test, installed with apt on first use (as root, as CI runs) and
reused after. Playwright only drives it: no browser is ever downloaded (`playwright install` is not run)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.installs import SetupError, apt_install, installing

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# As the dashboard is a page on 127.0.0.1: no sandbox as root, no GPU, and none of Chromium's own
# connections (this machine's network refuses them, many at a time).
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
)


def installed() -> Path:
    """Chromium's path, installing Debian's package first if it is missing or does not run."""
    with installing(ROOT / ".tools" / "chromium.lock"):
        if missing := _broken():
            apt_install("chromium", missing)
            problem = _broken()
            if problem:
                raise SetupError(f"apt-get installed chromium, but {problem}")
    return CHROMIUM


def _broken() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing"
    try:
        ran = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`chromium --version` failed: {e}"
    if ran.returncode != 0 or "Chromium" not in ran.stdout:
        return f"`chromium --version` exited {ran.returncode}: {(ran.stdout + ran.stderr).strip()[-200:]!r}"
    return None


