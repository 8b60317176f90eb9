"""A backend's key goes only where the user meant it to: `--no-key` forgets it, and a base_url that
changes while a key is stored is warned about, by the CLI and by a daemon picking up a hand edit."""

from __future__ import annotations

import json
import logging

import openai

from fakes.upstream import FakeOpenAI
from mlxgw import paths
from tests.daemon.helpers import run_cli
from tests.foundation.helpers import cli
from tests.gateway.helpers import start_gateway

KEY = "sk-test-creds-upstream-0001"
MSG = [{"role": "user", "content": "hi"}]


async def _until_served_by(oa: openai.AsyncOpenAI, up: FakeOpenAI, tries: int = 100) -> None:
    """Ask until `up` answers: the daemon has reloaded the config (bounded)."""
    for _ in range(tries):
        await oa.chat.completions.create(model="gpt-4o", messages=MSG)
        if up.requests:
            return
    raise AssertionError("the daemon never switched to the new base_url")


async def test_no_key_forgets_the_stored_key():
    async with FakeOpenAI() as first, FakeOpenAI() as second:
        cli("creds", "set", "up", "--type", "openai", "--base-url", first.url, input=KEY + "\n")
        cli("map", "add", "gpt-*", "up")
        server, url = await start_gateway()
        try:
            oa = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=10)
            await oa.chat.completions.create(model="gpt-4o", messages=MSG)
            assert first.requests[-1].bearer == KEY

            out = cli("creds", "set", "up", "--type", "openai", "--no-key", "--base-url", second.url).output
            assert "without a key" in out and "warning" not in out
            await _until_served_by(oa, second)
            assert [r.header("authorization") for r in second.requests] == [None] * len(second.requests)
            await oa.close()
        finally:
            await server.close()
    listed = {r["name"]: r for r in json.loads(cli("creds", "list", "--json").output)}
    assert listed["up"]["key"] is None and listed["up"]["key_source"] == "none"


def test_no_key_drops_a_key_from_the_environment_too(mlxgw_home):
    cli("creds", "set", "up", "--type", "openai", "--base-url", "http://127.0.0.1:9/v1", "--no-key")
    path = paths.config_path()
    path.write_text(path.read_text().replace("[backends.up]\n", '[backends.up]\napi_key_env = "UP_KEY"\n', 1))
    assert 'api_key_env = "UP_KEY"' in path.read_text()
    cli("creds", "set", "up", "--type", "openai", "--no-key")
    assert 'api_key_env = "UP_KEY"' not in path.read_text()
    assert json.loads(cli("creds", "list", "--json").output)[0]["key_source"] == "none"


def test_cli_warns_when_a_hand_edit_moves_a_stored_key(mlxgw_home):
    assert run_cli("creds", "set", "up", "--type", "openai", "--base-url", "http://127.0.0.1:9/v1", input=KEY + "\n").returncode == 0
    path = paths.config_path()
    path.write_text(path.read_text().replace("http://127.0.0.1:9/v1", "https://elsewhere.example/v1"))
    result = run_cli("map", "list")
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warning == [
        "warning: backend 'up' now sends its stored API key to https://elsewhere.example/v1 (its base_url was "
        "http://127.0.0.1:9/v1); if that server should not have it, run `mlxgw creds set up`"
    ]
    assert KEY not in result.stdout + result.stderr
    assert "warning" not in run_cli("map", "list").stderr  # said once, when the change was synced


def test_a_new_key_for_a_new_url_is_no_news(mlxgw_home):
    cli("creds", "set", "up", "--type", "openai", "--base-url", "http://127.0.0.1:9/v1", input=KEY + "\n")
    result = run_cli("creds", "set", "up", "--type", "openai", "--base-url", "http://127.0.0.1:8/v1", input="sk-test-other-0002\n")
    assert result.returncode == 0 and "warning" not in result.stderr


async def test_daemon_logs_a_hand_edit_that_moves_a_stored_key(caplog):
    caplog.set_level(logging.WARNING, logger="mlxgw.reload")
    async with FakeOpenAI() as first, FakeOpenAI() as second:
        cli("creds", "set", "up", "--type", "openai", "--base-url", first.url, input=KEY + "\n")
        cli("map", "add", "gpt-*", "up")
        server, url = await start_gateway()
        try:
            oa = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=10)
            path = paths.config_path()
            path.write_text(path.read_text().replace(first.url, second.url))
            await _until_served_by(oa, second)
            await oa.close()
        finally:
            await server.close()
    assert second.requests[0].bearer == KEY  # the stored key did go there: hence the warning
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(second.url in w and first.url in w and "'up'" in w for w in warnings), warnings
    assert not any(KEY in w for w in warnings)
