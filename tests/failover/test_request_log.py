"""The request log: one row per request, failed ones included, read back through `mlxgw log` and `stats`."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from fakes.upstream import FakeOpenAI, Reply, Usage
from mlxgw.store import request_log
from tests.failover.rig import client, gateway_for
from tests.foundation.helpers import cli

MSG = [{"role": "user", "content": "hi"}]


async def _rows(n: int):
    for _ in range(50):
        rows = request_log.tail(100)
        if len(rows) >= n:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {n} rows, have {len(request_log.tail(100))}")


async def test_log_and_stats_cli():
    replies = [Reply(status=503), Reply(status=503), Reply(text="ok", usage=Usage(input_tokens=11, output_tokens=7))]
    async with FakeOpenAI(*replies) as p, FakeOpenAI(Reply(text="from b", usage=Usage(input_tokens=5, output_tokens=3))) as b:
        backends = {"p": ("openai", p.url, {}), "b": ("openai", b.url, {})}
        async with gateway_for(backends, [{"pattern": "m", "backend": "p", "fallbacks": ["b"]}]) as url:
            oa = client(url)
            await oa.chat.completions.create(model="m", messages=MSG)  # p fails twice -> b
            stream = await oa.chat.completions.create(model="m", messages=MSG, stream=True, stream_options={"include_usage": True})
            [c async for c in stream]  # p answers
            with pytest.raises(openai.NotFoundError):
                await oa.chat.completions.create(model="unmapped", messages=MSG)
            rows = await _rows(3)
    assert len(rows) == 3

    lines = [json.loads(line) for line in cli("log", "--json", "--tail", "10").output.splitlines()]
    first, second, third = lines
    assert first["backend"] == "b" and first["status"] == 200 and first["output_tokens"] == 3
    assert [a["backend"] for a in first["attempts"]] == ["p", "b"]
    assert first["attempts"][0]["tries"] == 2 and first["attempts"][0]["error"]
    assert second["backend"] == "p" and second["stream"] is True and second["input_tokens"] == 11
    assert second["output_tokens"] == 7 and second["ttft_ms"] is not None
    assert third["status"] == 404 and third["error"] == "model_not_found" and third["backend"] is None

    table = cli("log").output
    assert "404" in table and "oa" not in table

    summary = json.loads(cli("stats", "--since", "1h", "--json").output)["backends"]
    by = {s["backend"]: s for s in summary}
    assert by["b"]["requests"] == 1 and by["b"]["failover_rate"] == 1.0
    assert by["p"]["requests"] == 1 and by["p"]["output_tokens"] == 7
    assert by["(none)"]["errors"] == 1
    assert "last 1h" in cli("stats").output
    assert "bad --since" in cli("stats", "--since", "soon", ok=False).output
