"""The CLI end to end: resolve order, JSON output, a real subprocess, serve's address override."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

from tests.foundation.helpers import cli


def test_resolve_order_priority_then_specificity_then_insertion(mlxgw_home):
    cli("map", "add", "gpt-*", "local", "-m", "/m/star")
    cli("map", "add", "gpt-4*", "local", "-m", "/m/gpt4star")
    cli("map", "add", "gpt-4?", "local", "-m", "/m/gpt4q")  # same literal count as gpt-4*: insertion decides
    cli("map", "add", "gpt-4o", "local", "-m", "/m/exact")
    cli("map", "add", "*", "local", "-m", "/m/any", "-f", "local:/m/star", "--priority", "-1" if False else "0")

    def resolve(model):
        return json.loads(cli("map", "resolve", model, "--json").output)

    assert resolve("gpt-4o")["mapping"] == "gpt-4o"
    assert resolve("gpt-4x")["mapping"] == "gpt-4*"
    assert resolve("gpt-3")["mapping"] == "gpt-*"
    assert resolve("claude")["mapping"] == "*"
    cli("map", "add", "gpt-4x", "local", "-m", "/m/low")
    cli("map", "add", "g*", "local", "-m", "/m/high", "--priority", "5")
    assert resolve("gpt-4o")["mapping"] == "g*"
    assert resolve("claude") == {
        "model": "claude",
        "mapping": "*",
        "chain": [{"backend": "local", "model": "/m/any"}, {"backend": "local", "model": "/m/star"}],
    }


def test_resolve_chain_uses_requested_name_and_never_repeats(mlxgw_home):
    cli("creds", "set", "groq", "--type", "openai", "--base-url", "http://127.0.0.1:9/v1", "--no-key")
    cli("map", "add", "llama-*", "groq", "-f", "local:/m/llama", "-f", "groq:llama-small")
    out = json.loads(cli("map", "resolve", "llama-big", "--json").output)
    assert out["chain"] == [
        {"backend": "groq", "model": "llama-big"},
        {"backend": "local", "model": "/m/llama"},
        {"backend": "groq", "model": "llama-small"},
    ]
    # The same pair is tried once even when a fallback spells out what the primary means.
    out = json.loads(cli("map", "resolve", "llama-small", "--json").output)
    assert out["chain"] == [{"backend": "groq", "model": "llama-small"}, {"backend": "local", "model": "/m/llama"}]


def test_unmatched_model_is_one_line_error(mlxgw_home):
    result = cli("map", "resolve", "nothing", ok=False)
    assert result.exit_code == 1
    assert result.output.strip() == "error: no mapping matches 'nothing'"


def test_lists_have_json(mlxgw_home):
    cli("map", "add", "a", "local", "-m", "/m/a")
    assert json.loads(cli("map", "list", "--json").output)[0]["pattern"] == "a"
    assert json.loads(cli("creds", "list", "--json").output) == []
    assert json.loads(cli("keys", "list", "--json").output) == []


def test_keys_create_prints_key_once_and_stores_hash(mlxgw_home):
    out = json.loads(cli("keys", "create", "laptop", "--json").output)
    assert out["name"] == "laptop" and out["key"].startswith("mgw-")
    db = (mlxgw_home / "mlxgw.db").read_bytes() + b"".join(
        p.read_bytes() for p in mlxgw_home.glob("mlxgw.db-*")
    )
    assert out["key"].encode() not in db
    assert out["key"] not in cli("keys", "list").output
    cli("keys", "revoke", "laptop")
    assert "no client key" in cli("keys", "revoke", "laptop", ok=False).output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_subprocess_cli_and_serve_address_override(mlxgw_home):
    env = {**os.environ, "MLXGW_HOME": str(mlxgw_home)}
    mlxgw = [sys.executable, "-m", "mlxgw"]
    done = subprocess.run([*mlxgw, "map", "add", "demo", "local", "-m", "/m/demo"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    port = _free_port()
    proc = subprocess.Popen([*mlxgw, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    body = json.loads(resp.read())
                    break
            except OSError:
                time.sleep(0.2)
        assert body is not None and body["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_refuses_public_address_without_client_keys(mlxgw_home):
    result = cli("serve", "--host", "0.0.0.0", ok=False)
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0" in result.output
