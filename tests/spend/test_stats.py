"""`mlxgw stats` sums requests, tokens and cost per backend, model, client key and UTC day."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from fakes.upstream import FakeOpenAI, Reply, Usage
from mlxgw.store.database import MIGRATIONS
from mlxgw.store.tables import Meta, db
from mlxgw.workspace import Workspace
from tests.foundation.helpers import cli
from tests.spend.helpers import ask, configure, create_key, gateway, key_row, logged

# $1 per million tokens in and out: a request's cost is its tokens / 1e6.
PRICING = {"gpt-*": "{ input = 1, output = 1 }"}


def _usage(n: int) -> Reply:
    return Reply(text="ok", usage=Usage(input_tokens=n, output_tokens=n))


@pytest.mark.usefixtures("store_engine")
async def test_stats_sums_cost_by_key_and_day_and_by_model():
    async with FakeOpenAI(_usage(1000), _usage(2000), _usage(4000)) as up:
        configure({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}], PRICING)
        k1, k2 = create_key("k1"), create_key("k2")
        async with gateway() as url:
            await ask(url, k1, "openai", model="gpt-4o")
            await ask(url, k1, "anthropic", model="gpt-4o-mini")
            await ask(url, k2, "openai", model="gpt-4o")
    today = dt.datetime.now(dt.UTC).date().isoformat()

    by_key_day = json.loads(cli("stats", "--by", "key", "--by", "day", "--json").output)
    assert by_key_day["by"] == ["key", "day"]
    assert [(g["key"], g["day"], g["requests"], g["cost_usd"]) for g in by_key_day["groups"]] == [
        ("k1", today, 2, pytest.approx(0.006)),
        ("k2", today, 1, pytest.approx(0.008)),
    ]
    assert by_key_day["groups"][0]["input_tokens"] == 3000 and by_key_day["groups"][0]["p50_ms"] is not None

    by_model = json.loads(cli("stats", "--by", "model", "--json").output)["groups"]
    assert {g["model"]: g["cost_usd"] for g in by_model} == {"gpt-4o": pytest.approx(0.010), "gpt-4o-mini": pytest.approx(0.004)}
    (backend,) = json.loads(cli("stats", "--json").output)["backends"]
    assert backend["backend"] == "oa" and backend["cost_usd"] == pytest.approx(0.014)

    table = cli("stats", "--by", "key").output
    assert "k1" in table and "k2" in table and "$0.0060" in table and "$0.0080" in table and "cost" in table
    # The keys' own counters agree with the log.
    assert key_row("k1")["today_usd"] == pytest.approx(0.006) and key_row("k1")["today_requests"] == 2
    assert key_row("k2")["today_tokens"] == 8000
    assert {r["client_key"] for r in logged(3)} == {"k1", "k2"}

    bad = cli("stats", "--by", "colour", ok=False)
    assert bad.exit_code == 1 and "bad --by 'colour'" in bad.output and len(bad.output.strip().splitlines()) == 1


async def test_a_store_from_before_spend_and_limits_is_migrated():
    async with FakeOpenAI(_usage(1000)) as up:
        configure({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}], PRICING)
        key = create_key("k1")
        # The store as schema 3 left it: none of the new columns or the usage table.
        Workspace.open()
        db.obj.execute_sql("DROP INDEX requestlog_client_key")
        for table, column in (
            ("requestlog", "client_key"), ("requestlog", "cost_usd"), ("mapping", "over_budget"),
            *(("clientkey", c) for c in ("rpm", "tpm", "daily_usd", "monthly_usd", "rpm_clear_at", "tpm_clear_at")),
        ):
            db.obj.execute_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.obj.execute_sql("DROP TABLE keyusage")
        Meta.replace(key="schema_version", value="3").execute()
        async with gateway() as url:
            assert (await ask(url, key, "openai")).status_code == 200
    assert Meta.get(Meta.key == "schema_version").value == str(len(MIGRATIONS))
    assert logged(1)[0]["cost_usd"] == pytest.approx(0.002) and key_row("k1")["today_usd"] == pytest.approx(0.002)
    cli("keys", "update", "k1", "--rpm", "5")
    assert key_row("k1")["rpm"] == 5
