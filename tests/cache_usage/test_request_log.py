"""The request log keeps each request's cache reads and writes and its prefill time (`mlxgw log`),
and `mlxgw stats` shows the cache hit ratio per model: from the local worker's own figures, and
from a cloud upstream's usage."""

from __future__ import annotations

import json

import openai
import pytest

from fakes.upstream import FakeAnthropic, FakeOpenAI, Reply, Usage
from mlxgw.store.database import MIGRATIONS
from mlxgw.store.tables import Meta, db
from mlxgw.workspace import Workspace
from tests.foundation.helpers import cli
from tests.prefix_cache.helpers import WAIT_S, gateway, prose
from tests.spend.helpers import ask, configure, logged
from tests.spend.helpers import gateway as cloud_gateway

SYSTEM = "You are a coding agent. " + prose(1400, seed=3)


def _by_model() -> dict[str, dict]:
    return {g["model"]: g for g in json.loads(cli("stats", "--by", "model", "--json").output)["groups"]}


async def test_local_rows_keep_what_the_worker_reused_and_its_prefill_time(demo_dir):
    usages = []
    async with gateway(demo_dir) as url:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=WAIT_S) as client:
            for question in ("Which files does the project have?", "Why does the build fail?"):
                messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
                reply = await client.chat.completions.create(model="demo", messages=messages, max_tokens=4, temperature=0)
                usages.append((reply._request_id, reply.usage))

    # Matched by request id: a row is written when its handler ends, which on a busy machine can be
    # after the next (cached, so quick) request's row.
    by_id = {row["request_id"]: row for row in logged(2)}
    rows = [by_id[request_id] for request_id, _ in usages]
    usages = [usage for _, usage in usages]
    for row, usage in zip(rows, usages, strict=True):
        assert row["backend"] == "local"
        assert row["cached_tokens"] == usage.prompt_tokens_details.cached_tokens
        assert row["input_tokens"] + row["cached_tokens"] == usage.prompt_tokens
        assert row["cache_write_tokens"] is None
        # The worker's own figure: from admitting the prompt to its first token, inside the time to first byte.
        assert 0 < row["prefill_ms"] < row["ttft_ms"]
    assert rows[1]["cached_tokens"] > 1000

    (group,) = _by_model().values()
    cached = sum(u.prompt_tokens_details.cached_tokens for u in usages)
    assert group["cached_tokens"] == cached
    assert group["cache_hit_ratio"] == pytest.approx(cached / sum(u.prompt_tokens for u in usages), abs=1e-4)
    table = cli("stats", "--by", "model").output
    assert f"{group['cache_hit_ratio']:.1%}" in table  # its column
    log_table = cli("log").output
    assert f"│ {rows[1]['cached_tokens']} " in log_table  # its column (the header folds at 80 columns)


@pytest.mark.usefixtures("store_engine")
async def test_cloud_rows_keep_the_upstreams_cache_reads_and_writes_and_no_prefill():
    anthropic_usage = Usage(input_tokens=100, output_tokens=5, cache_read_tokens=900, cache_creation_tokens=300)
    async with (
        FakeAnthropic(Reply(text="ok", usage=anthropic_usage)) as an,
        FakeOpenAI(Reply(text="ok", usage=Usage(input_tokens=200, output_tokens=5, cache_read_tokens=600))) as oa,
    ):
        configure(
            {"an": ("anthropic", an.url, {}), "oa": ("openai", oa.url, {})},
            [{"pattern": "claude-*", "backend": "an"}, {"pattern": "gpt-*", "backend": "oa"}],
        )
        async with cloud_gateway() as url:
            await ask(url, "x", "openai", model="claude-sonnet-4-5")  # translated: usage read from Anthropic's answer
            await ask(url, "x", "openai", model="gpt-4o")  # passed through

    claude, gpt = logged(2)
    assert (claude["input_tokens"], claude["cached_tokens"], claude["cache_write_tokens"]) == (100, 900, 300)
    assert (gpt["input_tokens"], gpt["cached_tokens"]) == (200, 600)
    assert claude["prefill_ms"] is None and gpt["prefill_ms"] is None and gpt["ttft_ms"] is not None
    stats = _by_model()
    assert stats["claude-sonnet-4-5"]["cache_hit_ratio"] == pytest.approx(900 / 1300, abs=1e-4)
    assert stats["gpt-4o"]["cache_hit_ratio"] == pytest.approx(600 / 800, abs=1e-4)


async def test_a_store_from_before_cache_usage_is_migrated():
    async with FakeOpenAI(Reply(text="ok", usage=Usage(input_tokens=10, output_tokens=1, cache_read_tokens=30))) as oa:
        configure({"oa": ("openai", oa.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}])
        # The store as schema 4 left it: the request log without the cache columns.
        Workspace.open()
        for column in ("cached_tokens", "cache_write_tokens", "prefill_ms"):
            db.obj.execute_sql(f"ALTER TABLE requestlog DROP COLUMN {column}")
        Meta.replace(key="schema_version", value="4").execute()
        async with cloud_gateway() as url:
            assert (await ask(url, "x", "openai")).status_code == 200
    assert Meta.get(Meta.key == "schema_version").value == str(len(MIGRATIONS))
    (row,) = logged(1)
    assert (row["cached_tokens"], row["prefill_ms"]) == (30, None)
