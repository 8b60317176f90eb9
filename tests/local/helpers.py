"""What the local-model gateway tests share: a gateway whose `demo` is the offline demo model."""

from __future__ import annotations

import contextlib

import aiohttp
import anthropic
import openai

from tests.failover.rig import write_config
from tests.gateway.helpers import start_gateway

PROMPT = [{"role": "user", "content": "Tell me about the weather"}]


@contextlib.asynccontextmanager
async def local_gateway(demo_dir, fallback_url: str | None = None, server: dict | None = None):
    backends = {"fb": ("openai", fallback_url, {})} if fallback_url else {}
    mapping = {"pattern": "demo", "backend": "local", "model": str(demo_dir)}
    if fallback_url:
        mapping["fallbacks"] = ["fb:backup-model"]
    write_config(backends, [mapping], server)
    server, url = await start_gateway()
    try:
        yield url
    finally:
        await server.close()


async def status(url: str) -> dict:
    async with aiohttp.ClientSession() as s, s.get(url + "/mlxgw/status") as r:
        return (await r.json())["local"]


def clients(url: str):
    return (
        openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0),
        anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0),
    )
