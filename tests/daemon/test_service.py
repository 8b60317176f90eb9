"""`mlxgw service`: the launchd agent and the systemd user unit it writes, and the calls it makes,
recorded by fake `launchctl` / `systemctl` executables placed first on PATH."""

from __future__ import annotations

import json
import os
import plistlib
import sys
from pathlib import Path

import pytest

from mlxgw import paths
from tests.foundation.helpers import cli

LABEL = "dev.mlxgw.gateway"
# Records its argv; answers `launchctl print` and `systemctl is-*` like a loaded, running service,
# and fails `launchctl bootout` the way launchctl does when nothing is loaded.
FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >> "{calls}"
case "$*" in
  bootout*) echo "Boot-out failed: 3: No such process" >&2; exit 3;;
  print*) printf '\\tstate = running\\n';;
  *is-active*) echo active;;
  *is-enabled*) echo enabled;;
esac
exit 0
"""


class Managers:
    def __init__(self, root: Path) -> None:
        self.calls_file = root / "calls"
        self.bin = root / "bin"
        self.bin.mkdir()
        for name in ("launchctl", "systemctl"):
            tool = self.bin / name
            tool.write_text(FAKE.format(calls=self.calls_file))
            tool.chmod(0o755)

    def calls(self) -> list[str]:
        calls = self.calls_file.read_text().splitlines() if self.calls_file.exists() else []
        self.calls_file.unlink(missing_ok=True)
        return calls


@pytest.fixture
def managers(tmp_path, monkeypatch) -> Managers:
    fake = Managers(tmp_path)
    monkeypatch.setenv("PATH", f"{fake.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return fake


def _program() -> list[str]:
    # Under pytest, sys.argv[0] is not the mlxgw script: the service runs `python -m mlxgw`.
    return [sys.executable, "-m", "mlxgw", "serve"]


def test_launchd_agent(managers, tmp_path):
    uid = os.getuid()
    plist_path = tmp_path / "user" / "Library" / "LaunchAgents" / f"{LABEL}.plist"

    printed = cli("service", "install", "--platform", "macos", "--print")
    assert not plist_path.exists() and managers.calls() == []
    assert plistlib.loads(printed.stdout.encode())["Label"] == LABEL

    result = cli("service", "install", "--platform", "macos")
    assert str(plist_path) in result.output
    assert managers.calls() == [f"launchctl bootout gui/{uid}/{LABEL}", f"launchctl bootstrap gui/{uid} {plist_path}"]
    agent = plistlib.loads(plist_path.read_bytes())
    assert agent["Label"] == LABEL
    assert agent["ProgramArguments"] == _program() and Path(agent["ProgramArguments"][0]).is_absolute()
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["EnvironmentVariables"] == {"MLXGW_HOME": str(paths.home().resolve())}
    assert agent["StandardOutPath"] == agent["StandardErrorPath"] == str(paths.log_dir() / "mlxgw.out")
    assert agent["ThrottleInterval"] > 0 and agent["ExitTimeOut"] > 30
    assert plistlib.loads(printed.stdout.encode()) == agent

    # Again: unload the old one first, then load; same file.
    cli("service", "install", "--platform", "macos")
    assert managers.calls() == [f"launchctl bootout gui/{uid}/{LABEL}", f"launchctl bootstrap gui/{uid} {plist_path}"]
    assert plistlib.loads(plist_path.read_bytes()) == agent

    status = json.loads(cli("service", "status", "--platform", "macos", "--json").stdout)
    assert status == {"platform": "macos", "path": str(plist_path), "installed": True, "loaded": True, "state": "running"}
    managers.calls()

    assert "removed" in cli("service", "uninstall", "--platform", "macos").output
    assert managers.calls() == [f"launchctl bootout gui/{uid}/{LABEL}"]
    assert not plist_path.exists()
    assert "not installed" in cli("service", "uninstall", "--platform", "macos").output


def test_launchd_agent_passes_the_config_along(managers, tmp_path):
    config_file = tmp_path / "elsewhere.toml"
    cli("--config", str(config_file), "service", "install", "--platform", "macos")
    agent = plistlib.loads((tmp_path / "user" / "Library" / "LaunchAgents" / f"{LABEL}.plist").read_bytes())
    assert agent["EnvironmentVariables"]["MLXGW_CONFIG"] == str(config_file.resolve())


def _unit(path: Path) -> dict[str, list[str]]:
    """`Section.Key` -> values (keys such as Environment may repeat)."""
    fields: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            fields.setdefault(f"{section}.{key}", []).append(value)
    return fields


def test_systemd_user_unit(managers, tmp_path):
    unit_path = tmp_path / "xdg" / "systemd" / "user" / "mlxgw.service"

    cli("service", "install", "--platform", "linux", "--print")
    assert not unit_path.exists() and managers.calls() == []

    cli("service", "install", "--platform", "linux")
    assert managers.calls() == ["systemctl --user daemon-reload", "systemctl --user enable --now mlxgw.service"]
    unit = _unit(unit_path)
    assert unit["Service.ExecStart"] == [" ".join(_program())]
    assert unit["Service.Environment"] == [f"MLXGW_HOME={paths.home().resolve()}"]
    assert unit["Service.Restart"] == ["on-failure"]
    assert unit["Service.KillMode"] == ["mixed"]
    assert int(unit["Service.TimeoutStopSec"][0]) > 30
    assert unit["Install.WantedBy"] == ["default.target"]

    status = json.loads(cli("service", "status", "--platform", "linux", "--json").stdout)
    assert status == {"platform": "linux", "path": str(unit_path), "installed": True, "loaded": True, "state": "active"}
    managers.calls()

    cli("service", "uninstall", "--platform", "linux")
    assert managers.calls() == ["systemctl --user disable --now mlxgw.service", "systemctl --user daemon-reload"]
    assert not unit_path.exists()


def test_systemd_unit_defaults_to_dot_config_and_quotes_odd_paths(managers, tmp_path, monkeypatch):
    home = tmp_path / "my home" / "100%"
    monkeypatch.setenv("MLXGW_HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME")
    cli("service", "install", "--platform", "linux")
    unit = _unit(tmp_path / "user" / ".config" / "systemd" / "user" / "mlxgw.service")
    assert unit["Service.Environment"] == [f'"MLXGW_HOME={tmp_path}/my home/100%%"']


def test_service_errors_are_one_line(managers, monkeypatch, tmp_path):
    assert "unknown platform 'windows'" in cli("service", "status", "--platform", "windows", ok=False).output
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    result = cli("service", "install", "--platform", "linux", ok=False)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: systemctl was not found; `mlxgw service install --print` shows the file to install by hand"
    ]


def test_install_refuses_while_a_daemon_outside_the_service_runs(managers):
    from mlxgw.daemon.lock import ServeLock

    lock = ServeLock.acquire()  # as `mlxgw start` would hold it
    try:
        result = cli("service", "install", "--platform", "linux", ok=False)
        assert result.exit_code == 1
        assert "a daemon is already running for this home" in result.output and "mlxgw stop" in result.output
        assert managers.calls() == []
    finally:
        lock.release()
