"""`mlxgw chat` against a running daemon: once for scripts, and interactively in a pseudo-terminal."""

from __future__ import annotations

import json
import os
import sys

import pexpect
import pytest

from fakes.upstream import Reply
from tests.daemon.helpers import MLXGW, run_cli, upstream_in_thread, wait_until
from tests.foundation.helpers import cli


@pytest.fixture
def demo_daemon(daemons):
    cli("models", "demo")
    cli("map", "add", "demo2", "local", "--model", "demo")
    return daemons.start()


def _spawn(*args: str) -> pexpect.spawn:
    env = {**os.environ, "TERM": "xterm"}
    return pexpect.spawn(
        sys.executable, [*MLXGW[1:], "chat", *args], env=env, encoding="utf-8", timeout=30, dimensions=(40, 120)
    )


def test_one_shot_and_piped(demo_daemon):
    once = run_cli("chat", "Say hello", "--max-tokens", "8")
    assert once.returncode == 0, once.stderr
    assert once.stdout.strip()

    piped = run_cli("chat", "--max-tokens", "8", "--backend-info", "-m", "demo2", input="hi there\n")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.strip()
    assert "local:demo" in piped.stderr and "tokens" in piped.stderr  # the info stays off stdout

    unmapped = run_cli("chat", "-m", "nope", "hi")
    assert unmapped.returncode == 1
    [line] = unmapped.stderr.splitlines()
    assert line.startswith("error: the daemon said: model 'nope' is not mapped")


def test_chat_without_a_daemon_says_how_to_start_one(port):
    result = cli("chat", "hi", ok=False)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: no mlxgw daemon is answering at http://127.0.0.1:{port}; start one with `mlxgw start`"
    ]


def test_interactive_two_turns_with_model_switch(demo_daemon, tmp_path):
    saved = tmp_path / "conversation.json"
    child = _spawn("--max-tokens", "8", "--backend-info", "--system", "be brief")
    try:
        child.expect("demo> ")
        child.sendline("hello there")
        child.expect(r"local:demo · \d+ → \d+ tokens")
        child.expect("demo> ")
        child.sendline("/model demo2")
        child.expect("now talking to")
        child.expect("demo2> ")
        child.sendline("and again")
        child.expect(r"local:demo · \d+ → \d+ tokens")
        child.expect("demo2> ")
        child.sendline(f"/save {saved}")
        child.expect("saved to")
        child.expect("demo2> ")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    conversation = json.loads(saved.read_text())
    assert conversation["model"] == "demo2"
    messages = conversation["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert [messages[1]["content"], messages[3]["content"]] == ["hello there", "and again"]


def test_ctrl_c_cancels_the_reply_but_not_the_chat(daemons, tmp_path):
    saved = tmp_path / "conversation.json"
    with upstream_in_thread(Reply(text=["first "] + ["tick "] * 60, chunk_delay_s=0.2), Reply(text="done")) as up:
        cli("creds", "set", "slow", "--type", "openai", "--base-url", up.url, "--no-key")
        cli("map", "add", "slow-1", "slow")
        daemons.start()
        child = _spawn("-m", "slow-1")
        try:
            child.expect("slow-1> ")
            child.sendline("count")
            child.expect("first")
            child.sendintr()  # Ctrl-C drops the connection; the daemon cancels the upstream request
            child.expect("cancelled")
            child.expect("slow-1> ")
            wait_until(lambda: up.requests and up.requests[0].disconnected, timeout=5, what="the upstream to be cancelled")
            child.sendline("/retry")  # the cancelled question is asked again
            child.expect("done")
            child.expect("slow-1> ")
            child.sendline(f"/save {saved}")
            child.expect("slow-1> ")
            child.sendeof()
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 0
    assert [m["content"] for m in json.loads(saved.read_text())["messages"]] == ["count", "done"]
