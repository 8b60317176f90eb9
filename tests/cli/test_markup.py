"""Text that came from a request or a user is printed as it is, never read as rich markup."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time

import openai
import pexpect
import pytest

from fakes.upstream import FakeOpenAI, Reply
from tests.daemon.helpers import MLXGW, Daemons, free_port, run_cli, upstream_in_thread, use_port
from tests.failover.rig import client, gateway_for
from tests.foundation.helpers import cli

NAMES = ["[/oops]", "[bold red]loud[/bold red]", "[link=http://x.test]y", "a\\[b]"]
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def logged(monkeypatch):
    """One logged request per markup-like model name (unmapped: 404s), plus one served one."""
    monkeypatch.setenv("COLUMNS", "250")  # the table must not fold the names across lines
    async with FakeOpenAI(Reply(text="ok")) as up:
        async with gateway_for({"up": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "up"}]) as url:
            oa = client(url)
            for name in NAMES:
                with pytest.raises(openai.NotFoundError):
                    await oa.chat.completions.create(model=name, messages=MSG)
            await oa.chat.completions.create(model="gpt-[x]", messages=MSG)
    assert len(cli("log", "--json").output.splitlines()) == len(NAMES) + 1
    return NAMES + ["gpt-[x]"]


async def test_log_table_prints_model_names_verbatim(logged):
    out = cli("log").output
    for name in logged:
        assert name in out
    assert "up:gpt-[x]" in out


async def test_log_follow_prints_model_names_verbatim(logged):
    proc = subprocess.Popen([*MLXGW, "log", "-f", "-n", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen = ""
    try:
        deadline = time.monotonic() + 20
        while not all(name in seen for name in logged) and time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(queue.Empty):
                seen += lines.get(timeout=0.2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "Traceback" not in err and "MarkupError" not in err
    for name in logged:
        assert name in seen


def test_user_text_in_messages_is_verbatim(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    result = cli("map", "resolve", "[/oops]", ok=False)
    assert result.exit_code == 1
    assert result.output.strip() == "error: no mapping matches '[/oops]'"
    assert "mapped [/x]* → local:/m/[red]" in cli("map", "add", "[/x]*", "local", "-m", "/m/[red]").output
    assert "[/x]*" in cli("map", "list").output and "/m/[red]" in cli("map", "list").output
    out = cli("map", "resolve", "/m", "--json").output
    assert json.loads(out)["mapping"] == "[/x]*"
    out = cli("map", "resolve", "/m").output
    assert "/m matches mapping [/x]*" in out and "local → /m/[red]" in out
    assert "removed mapping [/x]*" in cli("map", "remove", "[/x]*").output


def test_names_in_keys_and_models_lists_are_verbatim(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    cli("keys", "create", "[/k]")
    assert "[/k]" in cli("keys", "list").output
    cli("map", "add", "q", "local", "-m", "/m/[/x]")
    assert "/m/[/x]" in cli("models", "list").output


@pytest.fixture
def daemon(mlxgw_home):
    use_port(free_port())
    started = Daemons()
    try:
        yield started.start()
    finally:
        started.teardown()


def test_interactive_chat_prints_model_names_and_errors_verbatim(daemon):
    env = {**os.environ, "TERM": "xterm"}
    child = pexpect.spawn(
        sys.executable, [*MLXGW[1:], "chat", "-m", "[/oops]"], env=env, encoding="utf-8", timeout=30, dimensions=(40, 200)
    )
    try:
        # \S* between words: the ANSI codes of the bold and dim styles around the name
        child.expect(r"chatting with \S*\[/oops\]")
        child.expect_exact("[/oops]> ")
        child.sendline("hi")
        child.expect(r"error:\S* the daemon said: model '\[/oops\]' is not mapped")
        child.sendline("/model [b]x[/b]")
        child.expect(r"now talking to \S*\[b\]x\[/b\]")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert "Traceback" not in (child.before or "")


# An upstream's error `code` and message reach the request log and the CLI's error lines: escape
# sequences in them (a title change, a cleared screen, colours) must not reach the user's terminal.
HOSTILE_CODE = "x\x1b[31mred\x1b[0m"
HOSTILE_MESSAGE = "bad \x1b]0;pwned\x07 request\x1b[2J"


async def test_control_characters_from_an_upstream_never_reach_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    refusal = Reply(status=400, error_code=HOSTILE_CODE, error_message=HOSTILE_MESSAGE)
    async with FakeOpenAI(refusal) as up:
        async with gateway_for({"up": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "up"}]) as url:
            with pytest.raises(openai.BadRequestError) as raised:
                await client(url).chat.completions.create(model="gpt-4o", messages=MSG)
    assert raised.value.code == HOSTILE_CODE  # the client gets the upstream's error as it was
    table = cli("log").output
    assert "\x1b" not in table and "x\\x1b[31mred" in table
    proc = subprocess.run([*MLXGW, "log", "-n", "5"], capture_output=True, text=True, timeout=30)
    assert "\x1b" not in proc.stdout and "x\\x1b[31mred" in proc.stdout
    # `log -f` prints lines without the table: the same cells, escaped the same way
    follow = subprocess.Popen([*MLXGW, "log", "-f", "-n", "5"], stdout=subprocess.PIPE, text=True)
    try:
        line = follow.stdout.readline()
    finally:
        follow.terminate()
        follow.communicate(timeout=10)
    assert "gpt-4o" in line and "\x1b" not in line and "x\\x1b[31mred" in line


def test_a_daemon_error_line_shows_control_characters_escaped(mlxgw_home):
    refusal = Reply(status=400, error_message=HOSTILE_MESSAGE)
    use_port(free_port())
    started = Daemons()
    with upstream_in_thread(refusal) as up:
        cli("creds", "set", "up", "--type", "openai", "--base-url", up.url, "--no-key")
        cli("map", "add", "gpt-*", "up")
        try:
            started.start()
            result = run_cli("chat", "-m", "gpt-4o", "hi")
        finally:
            started.teardown()
    assert result.returncode == 1
    assert "\x1b" not in result.stderr and "bad \\x1b]0;pwned\\x07 request\\x1b[2J" in result.stderr
