"""`mlxgw launch claude|codex`: the agent's environment and command line from the home's mappings,
keys and daemon, shown by --print (key masked, ready for a shell) or handed to the agent: a stand-in
on PATH that writes down what it was given, and the real pinned Claude Code and Codex (tests/agents'
CLIs) through a daemon launch starts to a fake upstream; a missing agent is a one-line error."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fakes.upstream import FakeAnthropic, FakeOpenAI, Reply
from mlxgw import paths
from mlxgw.daemon.lock import holder
from mlxgw.store import client_keys
from mlxgw.store.credentials import mask
from mlxgw.workspace import Workspace
from tests.agents import codex, tools
from tests.daemon.helpers import MLXGW, Daemons, free_port, run_cli, use_port
from tests.foundation.helpers import cli

TIERS = ("ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
         "ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL")
USER_ANTHROPIC_KEY = "sk-ant-user-own-key-0001"
UPSTREAM_KEY = "sk-launch-test-upstream-0001"
# No provider here: launch gives Codex its own. What remains keeps Codex off the network.
CODEX_CONFIG = """\
approval_policy = "never"
check_for_update_on_startup = false

[analytics]
enabled = false

[features]
plugins = false
"""
# Claude Code's own traffic beyond its API (telemetry, error reports, updates, surveys), turned off.
CLAUDE_QUIET = {name: "1" for name in (
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "DISABLE_AUTOUPDATER", "DISABLE_TELEMETRY", "DISABLE_ERROR_REPORTING",
    "DISABLE_BUG_COMMAND", "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY", "CLAUDE_CODE_DISABLE_TERMINAL_TITLE")}


def codex_flags(base_url: str, model: str | None) -> list[str]:
    flags = ['model_provider="mlxgw"', 'model_providers.mlxgw.name="mlxgw"',
             f'model_providers.mlxgw.base_url="{base_url}"', 'model_providers.mlxgw.env_key="MLXGW_API_KEY"',
             'model_providers.mlxgw.wire_api="responses"', *([f'model="{model}"'] if model else [])]
    return [word for flag in flags for word in ("-c", flag)]


@pytest.fixture
def port(mlxgw_home) -> int:
    chosen = free_port()
    use_port(chosen)
    return chosen


@pytest.fixture
def daemons(port):
    started = Daemons()
    try:
        yield started
    finally:
        info = holder()
        if info is not None:  # one that launch started
            started.pids.append(info.pid)
        started.teardown()


@pytest.fixture
def agents(tmp_path, monkeypatch) -> Path:
    """A folder first on PATH where `fake_agent` puts stand-ins for the agents."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return folder


def fake_agent(folder: Path, name: str) -> Path:
    """An executable `name` that writes the arguments and environment it got to `name`.json, then exits."""
    record = folder / f"{name}.json"
    script = folder / name
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps({{'argv': sys.argv[1:], 'env': dict(os.environ)}}))\n"
    )
    script.chmod(0o755)
    return record


def seen(record: Path) -> tuple[list[str], dict[str, str]]:
    got = json.loads(record.read_text())
    return got["argv"], got["env"]


def key_names() -> list[str]:
    Workspace.open()
    return [k.name for k in client_keys.listing()]


def models_status(base_url: str, key: str | None) -> int:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(base_url + "/v1/models", headers=headers), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_print_claude_takes_models_from_mappings_masks_the_key_and_pastes_into_a_shell(port, agents, monkeypatch):
    cli("map", "add", "demo", "local")
    cli("map", "add", "claude-sonnet-4-6", "local", "--model", "demo")
    cli("map", "add", "claude-haiku-4-5", "local", "--model", "demo")
    key = cli("keys", "create", "alice").stdout.strip()
    record = fake_agent(agents, "claude")
    monkeypatch.setenv("ANTHROPIC_API_KEY", USER_ANTHROPIC_KEY)

    # Everything after the agent's name is Claude Code's own, its --print and --model included.
    printed = cli("launch", "--print", "--api-key", key, "claude", "-p", "say hi", "--model", "opus").stdout
    assert key not in printed and USER_ANTHROPIC_KEY not in printed
    assert f"ANTHROPIC_AUTH_TOKEN='{mask(key)}'" in printed
    assert printed.startswith("env -u ANTHROPIC_API_KEY")
    assert holder() is None, "--print started a daemon"
    assert not record.exists()

    # Ready to paste: a shell running the printed text gives the agent what launch would (key masked).
    subprocess.run(["sh", "-c", printed], check=True, timeout=30, stdin=subprocess.DEVNULL)
    argv, env = seen(record)
    assert argv == ["-p", "say hi", "--model", "opus"]
    assert env["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}"
    assert env["ANTHROPIC_AUTH_TOKEN"] == mask(key)
    assert "ANTHROPIC_API_KEY" not in env  # else Claude Code sends the user's own key as x-api-key
    # Each tier by its exact mapping; opus, mapped by nothing, gets the first Claude model mapped.
    assert {name: env[name] for name in TIERS} == {
        "ANTHROPIC_MODEL": "claude-sonnet-4-6",
        "ANTHROPIC_DEFAULT_OPUS_MODEL": "claude-sonnet-4-6",
        "ANTHROPIC_DEFAULT_SONNET_MODEL": "claude-sonnet-4-6",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5",
        "ANTHROPIC_SMALL_FAST_MODEL": "claude-haiku-4-5",
    }

    # --model: every tier asks for that name.
    chosen = cli("launch", "--print", "--model", "demo", "--api-key", key, "claude").stdout
    assert all(f"{name}=demo" in chosen for name in TIERS), chosen

    # A key the gateway would refuse is refused here, in one line.
    wrong = cli("launch", "--print", "--api-key", key + "x", "claude", ok=False)
    assert wrong.exit_code == 1
    assert wrong.output.strip().splitlines() == [
        "error: the key from --api-key or $MLXGW_API_KEY is not a client key of this gateway (`mlxgw keys list` shows them)"]


def test_print_codex_and_model_choices(port, agents):
    fake_agent(agents, "codex")
    fake_agent(agents, "claude")
    cli("map", "add", "demo", "local")
    cli("map", "add", "gpt-5.5", "local", "--model", "demo")
    cli("map", "add", "claude-*", "local", "--model", "demo")

    printed = cli("launch", "--print", "codex", "exec", "say hi").stdout
    assert f"-c 'model_providers.mlxgw.base_url=\"http://127.0.0.1:{port}/v1\"'" in printed
    assert "-c 'model_providers.mlxgw.wire_api=\"responses\"'" in printed
    assert "-c 'model=\"gpt-5.5\"'" in printed
    assert printed.rstrip().endswith("exec 'say hi'")
    assert "MLXGW_API_KEY=unused" in printed  # no client keys: any key will do, but Codex wants one

    # A pattern that takes Claude Code's own names: its tiers are left to it.
    claude = cli("launch", "--print", "claude").stdout
    assert not any(name in claude for name in TIERS), claude

    # Client keys exist and none is given: launch's own key, which --print does not create.
    cli("keys", "create", "alice")
    printed = cli("launch", "--print", "codex").stdout
    assert "MLXGW_API_KEY='<the client key launch-codex, created at launch>'" in printed
    assert key_names() == ["alice"]


def test_launch_claude_starts_the_daemon_and_hands_claude_code_a_working_key(daemons, port, agents, monkeypatch):
    cli("map", "add", "demo", "local")
    cli("keys", "create", "alice")
    record = fake_agent(agents, "claude")
    monkeypatch.setenv("ANTHROPIC_API_KEY", USER_ANTHROPIC_KEY)
    assert holder() is None

    ran = run_cli("launch", "claude", "-p", "say hi", "--model", "opus", "--", "x")
    assert ran.returncode == 0, ran.stderr
    info = holder()
    assert info is not None and info.port == port, "launch did not start the daemon"
    assert f"mlxgw started (pid {info.pid})" in ran.stderr and ran.stdout == ""
    argv, env = seen(record)
    assert argv == ["-p", "say hi", "--model", "opus", "--", "x"]
    assert env["ANTHROPIC_BASE_URL"] == info.url
    assert "ANTHROPIC_API_KEY" not in env
    assert all(env[name] == "demo" for name in TIERS)
    # A key of its own, which the daemon takes; it is written nowhere in the clear.
    key = env["ANTHROPIC_AUTH_TOKEN"]
    assert key_names() == ["alice", "launch-claude"]
    assert models_status(info.url, key) == 200 and models_status(info.url, None) == 401
    assert not [p for p in paths.home().rglob("*") if p.is_file() and key.encode() in p.read_bytes()]

    # The next launch finds the daemon running and the same key.
    record.unlink()
    again = run_cli("launch", "claude")
    assert again.returncode == 0, again.stderr
    assert "started" not in again.stderr
    assert seen(record)[1]["ANTHROPIC_AUTH_TOKEN"] == key
    assert key_names() == ["alice", "launch-claude"]

    # Its kept copy lost: nobody else ever saw that key, so it is replaced.
    (paths.home() / "launch" / "launch-claude.key").unlink()
    replaced = run_cli("launch", "claude")
    assert replaced.returncode == 0, replaced.stderr
    assert "replaced the client key launch-claude" in replaced.stderr
    new_key = seen(record)[1]["ANTHROPIC_AUTH_TOKEN"]
    assert new_key != key and key_names() == ["alice", "launch-claude"]
    assert models_status(info.url, new_key) == 200


def test_launch_codex_uses_the_running_daemons_address_and_passes_its_own_flags(daemons, port, agents):
    cli("map", "add", "demo", "local")
    elsewhere = free_port()
    info = daemons.start("--port", str(elsewhere))  # not the config's port: the address comes from the lock
    record = fake_agent(agents, "codex")

    ran = run_cli("launch", "codex", "exec", "-c", 'model_reasoning_effort="low"', "say hi")
    assert ran.returncode == 0, ran.stderr
    assert "started" not in ran.stderr
    argv, env = seen(record)
    base_url = f"http://127.0.0.1:{elsewhere}/v1"
    assert argv == [*codex_flags(base_url, "demo"), "exec", "-c", 'model_reasoning_effort="low"', "say hi"]
    assert env["MLXGW_API_KEY"] == "unused"
    assert holder() == info


@pytest.mark.parametrize(("agent", "package"), [("claude", "@anthropic-ai/claude-code"), ("codex", "@openai/codex")])
def test_a_missing_agent_or_model_is_one_line_saying_what_to_do(port, tmp_path, monkeypatch, agent, package):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = cli("launch", agent, ok=False)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: no mapping answers {agent}'s models: add one (`mlxgw map add PATTERN BACKEND`), build the local "
        f"demo (`mlxgw models demo`), or name a model with `mlxgw launch --model NAME {agent}`"]

    cli("map", "add", "demo", "local")
    result = cli("launch", agent, "-p", "hi", ok=False)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert f"npm install -g {package}" in lines[0] and "--agent-bin" in lines[0]
    assert holder() is None

    result = cli("launch", "--agent-bin", str(tmp_path / "nowhere"), agent, ok=False)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: --agent-bin {tmp_path / 'nowhere'} is not an executable file"]


@pytest.fixture
def agent_clis() -> dict[str, Path]:
    """The pinned agent CLIs of tests/agents, installed on first use."""
    try:
        return tools.installed()
    except tools.SetupError as e:
        pytest.fail(f"agent CLI set-up failed: {e}", pytrace=False)


async def launched(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """`mlxgw launch ARGS…` in a subprocess, off this loop's thread so that the fake upstream keeps
    answering the daemon; killed after the agent harness's timeout."""
    proc = await asyncio.create_subprocess_exec(
        *MLXGW, "launch", *args, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), codex.RUN_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        err += f"[killed after {codex.RUN_TIMEOUT_S} s]".encode()
    return proc.returncode if proc.returncode is not None else -9, out.decode(errors="replace"), err.decode(errors="replace")


def offline(egress: codex.Egress, **env: str) -> dict[str, str]:
    """This environment with `env`, and every proxy variable at the refusing proxy (loopback excepted)."""
    proxies = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
    return {**os.environ, **env, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            **dict.fromkeys(proxies, egress.url)}


async def test_real_codex_exec_through_launch(daemons, port, agent_clis, tmp_path):
    cli("keys", "create", "alice")
    async with FakeOpenAI(Reply(text="Launched through mlxgw."), require_key=UPSTREAM_KEY) as up:
        cli("creds", "set", "up", "--type", "openai", "--base-url", up.url, input=UPSTREAM_KEY + "\n")
        cli("map", "add", "gpt-test", "up", "--model", "gpt-4o")
        home = tmp_path / "codex-home" / ".codex"
        home.mkdir(parents=True)
        (home / "config.toml").write_text(CODEX_CONFIG)
        work = tmp_path / "work"
        work.mkdir()
        async with codex.Egress() as egress:
            env = offline(egress, HOME=str(home.parent), CODEX_HOME=str(home))
            code, out, err = await launched("--agent-bin", str(agent_clis["codex"]), "codex", "exec",
                                            "--skip-git-repo-check", "say hi", cwd=work, env=env)
        assert not egress.attempts, f"Codex tried to reach the network: {egress.attempts}"
    assert code == 0, (out, err[-4000:])
    assert "Launched through mlxgw." in out
    assert [r.json["model"] for r in up.requests] == ["gpt-4o"]
    assert key_names() == ["alice", "launch-codex"]


async def test_real_claude_code_through_launch(daemons, port, agent_clis, tmp_path):
    cli("keys", "create", "alice")
    async with FakeAnthropic(require_key=UPSTREAM_KEY) as up:
        cli("creds", "set", "up", "--type", "anthropic", "--base-url", up.url, input=UPSTREAM_KEY + "\n")
        cli("map", "add", "claude-*", "up")  # Claude Code's own model names, passed through
        home = tmp_path / "claude-home"
        (home / ".claude").mkdir(parents=True)
        work = tmp_path / "work"
        work.mkdir()
        async with codex.Egress() as egress:
            env = offline(egress, HOME=str(home), CLAUDE_CONFIG_DIR=str(home / ".claude"),
                          ANTHROPIC_API_KEY=USER_ANTHROPIC_KEY, **CLAUDE_QUIET)
            code, out, err = await launched("--agent-bin", str(agent_clis["claude"]), "claude", "-p", "say hi",
                                            "--output-format", "json", cwd=work, env=env)
        assert not egress.attempts, f"Claude Code tried to reach the network: {egress.attempts}"
    assert code == 0, (out, err[-4000:])
    assert json.loads(out)["result"] == FakeAnthropic.default_text
    turns = [r for r in up.requests if r.path == "/v1/messages"]
    assert turns and all(r.json["model"].startswith("claude-") for r in turns)
    assert key_names() == ["alice", "launch-claude"]  # its key, as a Bearer token, let it in
