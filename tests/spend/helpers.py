"""A gateway in front of fake upstreams, configured through a real TOML file with [pricing], and
client keys made with the real CLI."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import anthropic
import openai

from mlxgw import paths
from tests.failover.rig import write_config
from tests.foundation.helpers import cli
from tests.gateway.helpers import eventually, start_gateway

MSG = [{"role": "user", "content": "hi"}]


def configure(backends: dict, mappings: list[dict], pricing: dict[str, str] | None = None) -> None:
    """write_config's TOML, plus a [pricing] table ("KEY": "{ input = …, output = … }")."""
    write_config(backends, mappings)
    if pricing:
        lines = ["", "[pricing]", *(f'"{key}" = {value}' for key, value in pricing.items())]
        with paths.config_path().open("a") as f:
            f.write("\n".join(lines) + "\n")


@contextlib.asynccontextmanager
async def gateway() -> AsyncIterator[str]:
    """A gateway on the config and store as they are now; its request log is flushed on exit."""
    server, url = await start_gateway()
    try:
        yield url
    finally:
        await server.close()


def create_key(name: str, *limits: str) -> str:
    return json.loads(cli("keys", "create", name, *limits, "--json").output)["key"]


def key_row(name: str) -> dict:
    return next(k for k in json.loads(cli("keys", "list", "--json").output) if k["name"] == name)


async def spent_today(name: str, at_least: float) -> dict:
    """The key's row of `keys list` once its spend today reached `at_least` (charged off the request path)."""
    return await eventually(lambda: (row := key_row(name))["today_usd"] >= at_least and row, timeout=5)


def logged(n: int) -> list[dict]:
    return [json.loads(line) for line in cli("log", "--json", "--tail", str(n)).output.splitlines()]


def openai_client(url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=10)


def anthropic_client(url: str, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0, timeout=10)


@dataclass
class Asked:
    status_code: int
    headers: Mapping[str, str]
    text: str  # the answer's text, in either protocol


async def ask(url: str, key: str, protocol: str, model: str = "gpt-4o", **kw) -> Asked:
    """One chat turn through the official SDK of `protocol` (which raises its own errors)."""
    if protocol == "openai":
        async with openai_client(url, key) as client:
            raw = await client.chat.completions.with_raw_response.create(model=model, messages=MSG, **kw)
            text = raw.parse().choices[0].message.content
    else:
        async with anthropic_client(url, key) as client:
            raw = await client.messages.with_raw_response.create(model=model, max_tokens=16, messages=MSG, **kw)
            text = "".join(b.text for b in (await raw.parse()).content if b.type == "text")
    return Asked(raw.status_code, raw.headers, text)


RATE_LIMITED = {"openai": openai.RateLimitError, "anthropic": anthropic.RateLimitError}
