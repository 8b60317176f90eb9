"""A gateway in front of misbehaving fake upstreams, configured through a real TOML file."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import openai

from mlxgw import paths
from mlxgw.store import request_log
from tests.gateway.helpers import start_gateway

MSG = [{"role": "user", "content": "hi"}]

FAST = {"connect_timeout_s": 1, "first_byte_timeout_s": 1, "idle_timeout_s": 1, "max_tries": 2,
        "breaker_failures": 100, "breaker_cooldown_s": 30}


def write_config(backends: dict[str, tuple[str, str, dict]], mappings: list[dict], server: dict | None = None) -> None:
    lines = ["[server]", 'host = "127.0.0.1"', "port = 8421"]
    lines += [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in (server or {}).items()]
    for name, (btype, url, policy) in backends.items():
        lines += ["", f"[backends.{name}]", f'type = "{btype}"', f'base_url = "{url}"']
        lines += [f"{k} = {v}" for k, v in {**FAST, **policy}.items()]
    for m in mappings:
        lines += ["", "[[mappings]]"]
        for k, v in m.items():
            lines.append(f"{k} = {v!r}".replace("'", '"') if not isinstance(v, bool) else f"{k} = {str(v).lower()}")
    path = paths.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@contextlib.asynccontextmanager
async def gateway_for(backends, mappings, server=None) -> AsyncIterator[str]:
    write_config(backends, mappings, server)
    srv, url = await start_gateway()
    try:
        yield url
    finally:
        await srv.close()


def client(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)


class Clock:
    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.monotonic() - self.start


async def flushed_rows():
    for _ in range(50):
        rows = request_log.tail(50)
        if rows:
            return rows
        await asyncio.sleep(0.1)
    return []


async def post(url: str, model: str = "m", stream: bool = False) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession() as s, s.post(
        url + "/v1/chat/completions", json={"model": model, "messages": MSG, "stream": stream}
    ) as r:
        return r.status, dict(r.headers), await r.read()
