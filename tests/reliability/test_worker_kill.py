"""The local worker SIGKILLed under concurrent local streams, through a real `mlxgw serve`: streams
already answering end with the protocol's error event, requests still waiting for their first byte
are served by the fallback, the next request succeeds, and once the local breaker's cooldown has
passed the restarted worker answers again."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from fakes.upstream import FakeOpenAI
from mlxgw.worker.demo import build_demo_model
from tests.reliability.daemon import ANTHROPIC_HEADERS, daemon
from tests.reliability.sse import judge

PROMPT = [{"role": "user", "content": "Tell me a long story."}]


def _body(protocol: str, max_tokens: int) -> dict:
    body = {"model": "demo", "messages": PROMPT, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    return body if protocol == "openai" else {**body, "model": "demo"}


class Stream:
    """A streaming request read in the background; `content` is set at its first text."""

    def __init__(self, session: aiohttp.ClientSession, url: str, protocol: str, max_tokens: int) -> None:
        self.protocol = protocol
        self.content = asyncio.Event()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.task = asyncio.create_task(self._run(session, url, max_tokens))

    async def _run(self, session, url, max_tokens) -> None:
        path = "/v1/chat/completions" if self.protocol == "openai" else "/v1/messages"
        headers = {} if self.protocol == "openai" else ANTHROPIC_HEADERS
        async with asyncio.timeout(60), session.post(url + path, json=_body(self.protocol, max_tokens), headers=headers) as r:
            self.status = r.status
            self.headers = {k.lower(): v for k, v in r.headers.items()}
            async for chunk in r.content.iter_any():
                self.body += chunk
                if b'"content":"' in self.body.replace(b" ", b"") or b"text_delta" in self.body:
                    self.content.set()


async def test_worker_sigkill_under_concurrent_local_streams(tmp_path: Path):
    model_dir = build_demo_model(tmp_path / "demo")
    async with FakeOpenAI() as fallback:
        config = {
            "server": {"request_deadline_s": 60},
            # One try: a retry on the local backend would restart the worker instead of failing over.
            "local": {"max_tries": 1, "first_byte_timeout_s": 30, "breaker_cooldown_s": 1},
            "backends": {"fb": {"type": "openai", "base_url": fallback.url}},
            "mappings": [{"pattern": "demo", "backend": "local", "model": str(model_dir), "fallbacks": ["fb:gpt-fb"]}],
        }
        async with daemon(tmp_path, **config) as gw, aiohttp.ClientSession() as session:
            async with session.post(gw.url + "/v1/chat/completions",
                                    json={"model": "demo", "messages": PROMPT, "max_tokens": 4}) as r:
                assert r.status == 200 and r.headers["x-mlxgw-backend"].startswith("local:"), await r.text()
            async with session.get(gw.url + "/mlxgw/status") as r:
                pid = (await r.json())["local"]["pid"]

            answering = [Stream(session, gw.url, p, 1900) for p in ("openai", "anthropic") * 2]
            async with asyncio.timeout(30):
                await asyncio.gather(*(s.content.wait() for s in answering))
            os.kill(pid, signal.SIGSTOP)  # frozen: the next requests wait on it, before any byte
            waiting = [Stream(session, gw.url, p, 50) for p in ("openai", "anthropic") * 2]
            await asyncio.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            async with asyncio.timeout(30):
                await asyncio.gather(*(s.task for s in answering + waiting))

            for s in answering:
                assert s.status == 200
                assert judge(s.protocol, s.status, s.body) == "error_event", s.body[-300:]
            for s in waiting:
                assert judge(s.protocol, s.status, s.body) == "ok", s.body[-300:]
                assert s.headers["x-mlxgw-backend"] == "fb:gpt-fb"
            assert fallback.requests and len(fallback.requests) == len(waiting)

            # The next requests succeed: by the fallback while the local breaker is open (eight
            # failures opened it), then locally on a restarted worker.
            served = []
            for _ in range(20):
                async with session.post(gw.url + "/v1/chat/completions",
                                        json={"model": "demo", "messages": PROMPT, "max_tokens": 8, "stream": True},
                                        timeout=aiohttp.ClientTimeout(total=60)) as r:
                    body = await r.read()
                    assert judge("openai", r.status, body) == "ok", body[-300:]
                    served.append(r.headers["x-mlxgw-backend"])
                if served[-1].startswith("local:"):
                    break
                await asyncio.sleep(0.5)
            assert served[-1].startswith("local:"), served
            async with session.get(gw.url + "/mlxgw/status") as r:
                assert (await r.json())["local"]["pid"] not in (None, pid)
