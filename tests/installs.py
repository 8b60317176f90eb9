"""Installing the real parts some tests need (Debian packages, the agents' npm CLIs) on first use, as
CI runs, one run at a time: a part still missing after that is a SetupError for the tests that need
it, never a skip."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from mlxgw.fsutil import LockBusy, exclusive_lock

INSTALL_TIMEOUT_S = 900
APT_LOCK_WAIT_S = 300  # another apt run (or another test run's install) may hold dpkg's lock


class SetupError(Exception):
    """A real part cannot be installed or run: the tests that need it cannot start."""


@contextlib.contextmanager
def installing(lock: Path) -> Iterator[None]:
    """Held while a part is checked and installed: another test run waits for it, not clashes with it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive_lock(lock, wait_s=INSTALL_TIMEOUT_S + 60, busy=f"another run held {lock} too long"):
            yield
    except LockBusy as e:
        raise SetupError(str(e)) from e


def run_install(cmd: list[str], shown: str, **kwargs) -> None:
    """Run one install step, its failure a SetupError with the last lines it printed."""
    try:
        ran = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                             stdin=subprocess.DEVNULL, **kwargs)
    except subprocess.TimeoutExpired as e:
        raise SetupError(f"`{shown}` did not finish within {INSTALL_TIMEOUT_S} s") from e
    if ran.returncode != 0:
        tail = "\n".join((ran.stdout + ran.stderr).strip().splitlines()[-15:])
        raise SetupError(f"`{shown}` exited {ran.returncode}:\n{tail}")


def apt_install(package: str, missing: str) -> None:
    """Install Debian's `package` (as root only: the set-up never asks for sudo). `missing` says what
    was not found, for the errors."""
    if shutil.which("apt-get") is None:
        raise SetupError(f"{missing} and there is no apt-get: install the {package} package by hand")
    if os.geteuid() != 0:
        raise SetupError(f"{missing}: install it with `sudo apt-get install {package}` (the test set-up runs "
                         "apt-get itself only as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock_wait = f"DPkg::Lock::Timeout={APT_LOCK_WAIT_S}"
    for cmd in (["apt-get", "-o", lock_wait, "update"],
                ["apt-get", "-o", lock_wait, "install", "-y", "--no-install-recommends", package]):
        run_install(cmd, " ".join(cmd), env=env)
