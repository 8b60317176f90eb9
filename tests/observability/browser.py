"""Debian's Chromium for the dashboard test, installed with apt on first use (as root, as CI runs) and
reused after. Playwright only drives it: no browser is ever downloaded (`playwright install` is not run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from mlxgw.fsutil import LockBusy, exclusive_lock

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
INSTALL_TIMEOUT_S = 900
APT_LOCK_WAIT_S = 300  # another apt run (or another test run's install) may hold dpkg's lock
# As the dashboard is a page on 127.0.0.1: no sandbox as root, no GPU, and none of Chromium's own
# connections (this machine's network refuses them, many at a time).
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
)


class SetupError(Exception):
    """Chromium cannot be installed or run: the dashboard test cannot start."""


def installed() -> Path:
    """Chromium's path, installing Debian's package first if it is missing or does not run."""
    lock = ROOT / ".tools" / "chromium.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive_lock(lock, wait_s=INSTALL_TIMEOUT_S + 60, busy=f"another run held {lock} too long"):
            if _broken():
                _apt_install()
                problem = _broken()
                if problem:
                    raise SetupError(f"apt-get installed chromium, but {problem}")
    except LockBusy as e:
        raise SetupError(str(e)) from e
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


def _apt_install() -> None:
    if shutil.which("apt-get") is None:
        raise SetupError(f"{CHROMIUM} is missing and there is no apt-get: install Chromium there by hand")
    if os.geteuid() != 0:
        raise SetupError(f"{CHROMIUM} is missing: install it with `sudo apt-get install chromium` (the test set-up runs "
                         "apt-get itself only as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock_wait = f"DPkg::Lock::Timeout={APT_LOCK_WAIT_S}"
    for cmd in (["apt-get", "-o", lock_wait, "update"],
                ["apt-get", "-o", lock_wait, "install", "-y", "--no-install-recommends", "chromium"]):
        try:
            ran = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env,
                                 stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise SetupError(f"`{' '.join(cmd)}` did not finish within {INSTALL_TIMEOUT_S} s") from e
        if ran.returncode != 0:
            tail = "\n".join((ran.stdout + ran.stderr).strip().splitlines()[-15:])
            raise SetupError(f"`{' '.join(cmd)}` exited {ran.returncode}:\n{tail}")
