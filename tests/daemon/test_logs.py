"""The daemon's log: one line per record, rotated by size, and never a credential in it."""

from __future__ import annotations

import logging

import openai
import pytest

from fakes.upstream import Reply
from mlxgw import logs, paths
from tests.daemon.helpers import run_cli, upstream_in_thread
from tests.foundation.helpers import cli

UPSTREAM_KEY = "sk-test-daemon-upstream-SECRET-0001"


@pytest.fixture
def root_logging():
    """logs.setup() replaces the root logger's handlers: give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_no_credential_reaches_the_log(daemons):
    with upstream_in_thread(require_key=UPSTREAM_KEY) as up:
        cli("creds", "set", "up", "--type", "openai", "--base-url", up.url, input=UPSTREAM_KEY + "\n")
        cli("map", "add", "gpt-*", "up")
        client_key = cli("keys", "create", "me").stdout.strip()
        assert client_key.startswith("mgw-")
        info = daemons.start()
        client = openai.OpenAI(base_url=info.url + "/v1", api_key=client_key, max_retries=0, timeout=10)
        ask = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        assert client.chat.completions.create(**ask).choices[0].message.content
        assert "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**ask, stream=True) if c.choices)
        up.push(Reply(status=500), Reply(status=500), Reply(status=500))  # failures the daemon logs
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(**ask)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=info.url + "/v1", api_key="sk-wrong-client-key-123456", max_retries=0).models.list()
        assert up.requests[0].bearer == UPSTREAM_KEY  # the key was in use, not merely stored
        assert run_cli("stop").returncode == 0

    text = "".join(p.read_text(errors="replace") for p in paths.log_dir().iterdir())
    assert "listening on" in text and "moving on" in text
    for secret in (UPSTREAM_KEY, client_key, "sk-wrong-client-key-123456"):
        assert secret not in text and secret[8:20] not in text


def test_records_are_one_masked_line(root_logging):
    path = logs.setup(console=False)
    log = logging.getLogger("mlxgw.test")
    log.warning("upstream said: Incorrect API key provided: sk-proj-abcdef123456")
    log.info("headers: {'Authorization': 'Bearer mgw-AbCdEf_123456', 'x-api-key': 'hunter2hunter2'}")
    try:
        raise RuntimeError("failed with api_key=plainsecret99\nsecond line")
    except RuntimeError:
        log.exception("it broke")
    for handler in root_logging.handlers:
        handler.flush()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith(" WARNING mlxgw.test upstream said: Incorrect API key provided: [redacted]")
    assert "Bearer [redacted]" in lines[1] and "'x-api-key': '[redacted]'" in lines[1]
    assert " ERROR mlxgw.test it broke ⏎ Traceback (most recent call last):" in lines[2]
    assert "api_key=[redacted] ⏎ second line" in lines[2]
    for secret in ("abcdef123456", "AbCdEf_123456", "hunter2hunter2", "plainsecret99"):
        assert secret not in path.read_text()


def test_the_log_rotates_by_size(root_logging):
    path = logs.setup(console=False, max_bytes=2000, backups=2)
    log = logging.getLogger("mlxgw.test")
    for i in range(200):
        log.info("record %03d %s", i, "x" * 40)
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["mlxgw.log", "mlxgw.log.1", "mlxgw.log.2"]
    assert all(p.stat().st_size <= 2000 for p in path.parent.iterdir())
    assert logs.tail(path, 1)[0].endswith("record 199 " + "x" * 40)
