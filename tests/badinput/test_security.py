"""Secrets and paths, against a real `mlxgw serve`: the backend key never leaves the vault (not in the
daemon's log, the DB file, the config after sync, nor any response); client keys are enforced once
one exists; a path as a model name loads nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from bench import procs
from fakes.upstream import FakeOpenAI, Reply, refused_url
from tests.reliability.daemon import ANTHROPIC_HEADERS, daemon
from tests.reliability.sse import error_shape_ok, judge

SECRET = "sk-test-SECRET-7c1f0e9d2b4a6688-never-shown"
MSG = [{"role": "user", "content": "hi"}]


def _cli(home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MLXGW_CONFIG", "MLXGW_SECRET_KEY")}
    done = subprocess.run([procs.MLXGW, *args], env={**env, "MLXGW_HOME": str(home)},
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


async def test_backend_key_never_leaves_the_vault(tmp_path: Path):
    replies = [
        Reply(text="fine"), Reply(text="fine streamed"),
        Reply(status=500), Reply(status=500),
        # An upstream that echoes the key in its error message: the gateway must not pass it on.
        Reply(status=400, error_message=f"Incorrect API key provided: {SECRET}"),
        Reply(status=401, error_message=f"Incorrect API key provided: {SECRET}"),
    ]
    async with FakeOpenAI(*replies, require_key=SECRET) as up:
        config = {"backends": {"oa": {"type": "openai", "base_url": up.url, "api_key": SECRET, "max_tries": 1}},
                  "mappings": [{"pattern": "m", "backend": "oa"}]}
        async with daemon(tmp_path, **config) as gw, aiohttp.ClientSession() as session:
            seen = []
            for protocol, stream in [("openai", False), ("openai", True), ("openai", False), ("anthropic", False),
                                     ("anthropic", True), ("openai", True)]:
                path = "/v1/chat/completions" if protocol == "openai" else "/v1/messages"
                body = {"model": "m", "messages": MSG, "max_tokens": 10, "stream": stream}
                async with session.post(gw.url + path, json=body, headers=ANTHROPIC_HEADERS) as r:
                    seen.append((r.status, dict(r.headers), await r.read()))
            async with session.get(gw.url + "/health") as r:
                seen.append((r.status, dict(r.headers), await r.read()))
            async with session.get(gw.url + "/mlxgw/status") as r:
                seen.append((r.status, dict(r.headers), await r.read()))
            assert seen[0][0] == 200 and seen[1][0] == 200
            assert all(r.bearer == SECRET for r in up.requests), "the upstream gets the real key"
            await asyncio.sleep(0.7)  # the request log flushes every 0.5 s
            # Every file of the home (DB and its journal, config, logs) and the daemon's own output.
            files = [p for p in gw.home.rglob("*") if p.is_file()] + [tmp_path / "mlxgw.log"]
            assert gw.home / "mlxgw.db" in files
            for path in files:
                assert SECRET.encode() not in path.read_bytes(), path
        for status, headers, body in seen:
            assert SECRET not in body.decode(errors="replace"), (status, body[:300])
            assert SECRET not in json.dumps(headers)
        assert any(b"[redacted]" in body for _, _, body in seen), "the echoing upstream's message arrives, redacted"


def _sse(*payloads: dict) -> list[bytes]:
    return [b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads]


_CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
_ECHO = {"error": {"message": f"Incorrect API key provided: {SECRET}", "type": "invalid_request_error", "code": None}}


async def test_backend_key_echoed_inside_an_answer_never_reaches_the_client(tmp_path: Path):
    """Errors an upstream reports inside a 200 (an SSE error frame before or after the first byte, an
    error object as the whole body) are redacted like those with an HTTP error status."""
    text = {**_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}]}
    replies = [
        Reply(raw=_sse(text, _ECHO)),  # after the first byte: an error event
        Reply(raw=_sse(_ECHO)),  # before it: an HTTP error
        Reply(raw=json.dumps(_ECHO).encode()),  # a whole answer that is an error
    ]
    async with FakeOpenAI(*[r for r in replies for _ in ("openai", "anthropic")], require_key=SECRET) as up:
        config = {"backends": {"oa": {"type": "openai", "base_url": up.url, "api_key": SECRET, "max_tries": 1}},
                  "mappings": [{"pattern": "m", "backend": "oa"}]}
        async with daemon(tmp_path, **config) as gw, aiohttp.ClientSession() as session:
            seen = []
            for stream in (True, True, False):
                for path in ("/v1/chat/completions", "/v1/messages"):
                    body = {"model": "m", "messages": MSG, "max_tokens": 10, "stream": stream}
                    async with session.post(gw.url + path, json=body, headers=ANTHROPIC_HEADERS) as r:
                        seen.append((r.status, await r.read()))
    assert len(up.requests) == 6
    assert [status for status, _ in seen] == [200, 200, 400, 400, 400, 400]
    for status, body in seen:
        assert SECRET not in body.decode(errors="replace"), (status, body[:300])
        assert b"Incorrect API key provided: [redacted]" in body, (status, body[:300])


async def test_client_key_required_once_one_exists(tmp_path: Path):
    async with FakeOpenAI() as up:
        config = {"backends": {"oa": {"type": "openai", "base_url": up.url}}, "mappings": [{"pattern": "m", "backend": "oa"}]}
        async with daemon(tmp_path, **config) as gw, aiohttp.ClientSession() as session:
            async with session.post(gw.url + "/v1/chat/completions", json={"model": "m", "messages": MSG}) as r:
                assert r.status == 200
            key = _cli(gw.home, "keys", "create", "ci").strip().splitlines()[-1].strip()
            assert len(key) > 16
            for _ in range(50):  # the daemon notices new keys within about a second
                async with session.post(gw.url + "/v1/chat/completions", json={"model": "m", "messages": MSG}) as r:
                    if r.status == 401:
                        break
                await asyncio.sleep(0.1)
            cases = [("/v1/chat/completions", "openai", {}), ("/v1/messages", "anthropic", ANTHROPIC_HEADERS),
                     ("/v1/chat/completions", "openai", {"authorization": "Bearer wrong-key"}),
                     ("/v1/messages", "anthropic", {**ANTHROPIC_HEADERS, "x-api-key": "wrong-key"})]
            for path, protocol, headers in cases:
                body = {"model": "m", "messages": MSG, "max_tokens": 10}
                async with session.post(gw.url + path, json=body, headers=headers) as r:
                    assert r.status == 401, (path, headers)
                    assert error_shape_ok(protocol, await r.json())
                async with session.get(gw.url + "/v1/models", headers=headers) as r:
                    assert r.status == 401
            for path, protocol, headers in [("/v1/chat/completions", "openai", {"authorization": f"Bearer {key}"}),
                                            ("/v1/messages", "anthropic", {**ANTHROPIC_HEADERS, "x-api-key": key})]:
                body = {"model": "m", "messages": MSG, "max_tokens": 10, "stream": True}
                async with session.post(gw.url + path, json=body, headers=headers) as r:
                    assert judge(protocol, r.status, await r.read()) == "ok"


@pytest.mark.parametrize("name", ["/etc/passwd", "../../x", "~/.ssh", "./models/../../secret", "/tmp", "..", "%2e%2e/x"])
async def test_a_path_as_model_name_loads_nothing(tmp_path: Path, name: str):
    config = {
        "local": {"max_tries": 1},
        # Every name goes to an unreachable backend, then to `local` under the requested name.
        "backends": {"r": {"type": "openai", "base_url": refused_url("/v1"), "max_tries": 1}},
        "mappings": [{"pattern": "*", "backend": "r", "fallbacks": ["local"]}],
    }
    async with daemon(tmp_path, **config) as gw, aiohttp.ClientSession() as session:
        for path, headers in [("/v1/chat/completions", {}), ("/v1/messages", ANTHROPIC_HEADERS)]:
            body = {"model": name, "messages": MSG, "max_tokens": 10}
            async with session.post(gw.url + path, json=body, headers=headers) as r:
                assert r.status in (404, 502, 503), await r.text()
                assert error_shape_ok("openai" if path.endswith("completions") else "anthropic", await r.json())
        async with session.post(gw.url + f"/mlxgw/models/{quote(name, safe='')}/load") as r:
            assert r.status >= 400
            assert r.status < 500 or r.status in (502, 503), await r.text()
        async with session.get(gw.url + "/mlxgw/models") as r:
            status = await r.json()
        assert status["configured"] == []
        assert not (status.get("worker") or {}).get("models"), status
