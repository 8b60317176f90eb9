"""mlxgw as a per-user service that starts at login and comes back after a crash: a launchd agent
on macOS, a systemd user unit on Linux.

The files are rendered here from this very installation (the absolute path of this `mlxgw`, this
home, this config); installing writes them and asks `launchctl` / `systemctl` (found on PATH) to
load them. A graceful stop exits 0, which neither manager restarts (KeepAlive SuccessfulExit=false,
Restart=on-failure); a crash exits non-zero and is restarted.
"""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxgw import logs, paths
from mlxgw.daemon import DRAIN_S, lock
from mlxgw.errors import MlxgwError

LABEL = "dev.mlxgw.gateway"
UNIT = "mlxgw.service"
PLATFORMS = ("macos", "linux")
THROTTLE_S = 10  # launchd: at most one restart every 10 s
RESTART_S = 5  # systemd: wait before a restart
STOP_TIMEOUT_S = int(DRAIN_S) + 15  # the drain, then closing the worker, before the manager kills


@dataclass(frozen=True)
class ServiceFile:
    platform: str
    path: Path
    content: str


def current_platform() -> str:
    return "macos" if sys.platform == "darwin" else "linux"


def check_platform(platform: str | None) -> str:
    chosen = platform or current_platform()
    if chosen not in PLATFORMS:
        raise MlxgwError(f"unknown platform {chosen!r} (expected one of: {', '.join(PLATFORMS)})")
    return chosen


def program() -> list[str]:
    """This mlxgw by absolute path: a service has neither the user's PATH nor their virtualenv."""
    script = Path(sys.argv[0])
    if script.name == "mlxgw" and script.is_file():
        return [str(script.absolute())]
    # Not run as the `mlxgw` script (python -m mlxgw, tests): the interpreter's path, unresolved, so a
    # virtualenv's python stays that virtualenv's.
    return [os.path.abspath(sys.executable), "-m", "mlxgw"]


def environment() -> dict[str, str]:
    env = {"MLXGW_HOME": str(paths.home().resolve())}
    if os.environ.get("MLXGW_CONFIG"):
        env["MLXGW_CONFIG"] = str(Path(os.environ["MLXGW_CONFIG"]).expanduser().resolve())
    return env


def service_file(platform: str) -> ServiceFile:
    if platform == "macos":
        return ServiceFile(platform, Path.home() / "Library" / "LaunchAgents" / f"{LABEL}.plist", _plist())
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return ServiceFile(platform, base / "systemd" / "user" / UNIT, _unit())


def _plist() -> str:
    output = str(logs.output_path())
    agent = {
        "Label": LABEL,
        "ProgramArguments": [*program(), "serve"],
        "EnvironmentVariables": environment(),
        "WorkingDirectory": str(paths.home().resolve()),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": THROTTLE_S,
        "ExitTimeOut": STOP_TIMEOUT_S,
        "StandardOutPath": output,
        "StandardErrorPath": output,
    }
    return plistlib.dumps(agent).decode()


def _unit() -> str:
    exec_start = " ".join(_systemd_quote(arg) for arg in [*program(), "serve"])
    env = "\n".join(f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in environment().items())
    return f"""\
[Unit]
Description=mlxgw, a local-first LLM gateway
After=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
{env}
WorkingDirectory={_systemd_quote(str(paths.home().resolve()))}
Restart=on-failure
RestartSec={RESTART_S}
# SIGTERM to the daemon alone: it drains its requests, then stops its worker itself.
KillMode=mixed
TimeoutStopSec={STOP_TIMEOUT_S}

[Install]
WantedBy=default.target
"""


def _systemd_quote(text: str) -> str:
    text = text.replace("%", "%%")  # systemd expands %-specifiers
    if text and not re.search(r"[\s\"'\\;]", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def install(platform: str) -> ServiceFile:
    """Write the service file and load it; running it again replaces an older one."""
    file = service_file(platform)
    previous = file.path.read_text(encoding="utf-8") if file.path.exists() else None
    running = lock.holder()
    if running is not None and previous is None:
        # Not the service's own daemon: the service's copy would fail on the lock and restart forever.
        raise MlxgwError(
            f"a daemon is already running for this home (pid {running.pid}); stop it with `mlxgw stop`, "
            "then install the service"
        )
    if platform == "macos":
        _run("launchctl", "bootout", f"gui/{os.getuid()}/{LABEL}", may_fail=True)  # "not loaded" is fine
        _write(file)
        _run("launchctl", "bootstrap", f"gui/{os.getuid()}", str(file.path))
    else:
        _write(file)
        _run("systemctl", "--user", "daemon-reload")
        _run("systemctl", "--user", "enable", "--now", UNIT)
        if previous is not None and previous != file.content:
            _run("systemctl", "--user", "try-restart", UNIT)  # `enable --now` leaves a running old copy be
    return file


def uninstall(platform: str) -> ServiceFile | None:
    """Stop and unload the service and remove its file; None when it was not installed."""
    file = service_file(platform)
    if platform == "macos":
        _run("launchctl", "bootout", f"gui/{os.getuid()}/{LABEL}", may_fail=True)
        installed = file.path.exists()
        file.path.unlink(missing_ok=True)
    else:
        installed = file.path.exists()
        if installed:
            _run("systemctl", "--user", "disable", "--now", UNIT, may_fail=True)
        file.path.unlink(missing_ok=True)
        if installed:
            _run("systemctl", "--user", "daemon-reload")
    return file if installed else None


def status(platform: str) -> dict[str, Any]:
    file = service_file(platform)
    report: dict[str, Any] = {"platform": platform, "path": str(file.path), "installed": file.path.exists()}
    if platform == "macos":
        shown = _run("launchctl", "print", f"gui/{os.getuid()}/{LABEL}", may_fail=True)
        report["loaded"] = shown.returncode == 0
        found = re.search(r"^\s*state = (\S+)", shown.stdout, re.M)
        report["state"] = found.group(1) if found else ("not loaded" if shown.returncode else "unknown")
    else:
        active = _run("systemctl", "--user", "is-active", UNIT, may_fail=True)
        enabled = _run("systemctl", "--user", "is-enabled", UNIT, may_fail=True)
        report["loaded"] = enabled.stdout.strip() in ("enabled", "enabled-runtime")
        report["state"] = active.stdout.strip() or "unknown"
    return report


def _write(file: ServiceFile) -> None:
    file.path.parent.mkdir(parents=True, exist_ok=True)
    file.path.write_text(file.content, encoding="utf-8")


def _run(*argv: str, may_fail: bool = False) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        raise MlxgwError(
            f"{argv[0]} was not found; `mlxgw service install --print` shows the file to install by hand"
        )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0 and not may_fail:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise MlxgwError(f"`{' '.join(argv)}` failed: {said[-1] if said else f'exit status {done.returncode}'}")
    return done
