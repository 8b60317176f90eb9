"""`mlxgw models demo / list / load / unload` against a real daemon in a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.foundation.helpers import cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def daemon(mlxgw_home):
    cli("models", "demo")
    port = _free_port()
    config = mlxgw_home / "config.toml"
    config.write_text(config.read_text().replace("port = 8421", f"port = {port}"))
    env = {**os.environ, "MLXGW_HOME": str(mlxgw_home)}
    proc = subprocess.Popen([sys.executable, "-m", "mlxgw", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_demo_is_built_and_mapped(mlxgw_home):
    out = cli("models", "demo").output
    assert "demo model ready" in out
    assert (mlxgw_home / "models" / "demo" / "model.safetensors").exists()
    resolved = json.loads(cli("map", "resolve", "demo", "--json").output)
    assert resolved["chain"] == [{"backend": "local", "model": "demo"}]
    again = cli("models", "demo")  # idempotent: no second mapping, no error
    assert "mapped demo" not in again.output
    assert json.loads(cli("map", "list", "--json").output)[0]["pattern"] == "demo"
    assert len(json.loads(cli("map", "list", "--json").output)) == 1


def test_list_without_daemon_says_so(mlxgw_home):
    cli("models", "demo")
    result = cli("models", "list", "--json")
    data = json.loads(result.output)
    assert data["daemon_running"] is False
    assert [m["name"] for m in data["models"]] == ["demo"]


def test_load_list_unload_through_the_daemon(daemon):
    cli("models", "load", "demo")
    listed = json.loads(cli("models", "list", "--json").output)
    (demo,) = listed["models"]
    assert demo["loaded"] is True and demo["memory_bytes"] > 0
    assert "unloaded" in cli("models", "unload", "demo").output
    listed = json.loads(cli("models", "list", "--json").output)
    assert listed["models"][0]["loaded"] is False


def test_only_mapped_models_can_be_loaded(daemon):
    result = cli("models", "load", "/etc", ok=False)
    assert result.exit_code == 1 and "no mapping names a local model '/etc'" in result.output


def test_pull_failures_are_one_line(mlxgw_home):
    # The tests run offline (HF_HUB_OFFLINE=1): an uncached repo cannot be fetched.
    result = cli("models", "pull", "mlx-community/not-in-the-cache", ok=False)
    assert result.exit_code == 1
    assert result.output.startswith("error: could not download mlx-community/not-in-the-cache")
    assert len(result.output.strip().splitlines()) == 1
    result = cli("models", "pull", "no such repo", ok=False)
    assert "is not a Hugging Face repo id" in result.output
