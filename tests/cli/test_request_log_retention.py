"""The request log is pruned by the running daemon ([server] request_log_days), and `stats` and
`status` count with SQL aggregates that mean what they meant."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import openai
import pytest

from mlxgw import paths
from mlxgw.store.tables import RequestLog, utcnow
from mlxgw.workspace import Workspace
from tests.foundation.helpers import cli
from tests.gateway.helpers import start_gateway


def _row(age: dt.timedelta, **kw) -> dict:
    row = {
        "time": utcnow() - age, "request_id": "req_test", "protocol": "openai", "requested_model": "m", "status": 200,
        "backend": None, "fallbacks": 0, "latency_ms": None, "input_tokens": None, "output_tokens": None,
        "error_kind": None,
    }
    return {**row, **kw}  # every row names every column: insert_many takes its columns from the first


def _insert(*rows: dict) -> None:
    Workspace.open()
    RequestLog.insert_many(list(rows)).execute()


def _set_retention(value: str) -> None:
    """Edit the default config's request_log_days by hand, as a user would."""
    cli("config", "path")
    path = paths.config_path()
    text = path.read_text()
    assert "\nrequest_log_days = 30 " in text
    path.write_text(text.replace("\nrequest_log_days = 30 ", f"\nrequest_log_days = {value} ", 1))


def _logged_ids() -> list[str]:
    return [json.loads(line)["request_id"] for line in cli("log", "--json", "-n", "100").output.splitlines()]


async def _until(check, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_daemon_prunes_old_requests_at_start_and_when_retention_changes():
    _insert(
        _row(dt.timedelta(days=45), request_id="req_ancient"),
        _row(dt.timedelta(days=31), request_id="req_old"),
        _row(dt.timedelta(days=3), request_id="req_days"),
        _row(dt.timedelta(minutes=5), request_id="req_recent"),
    )
    server, _ = await start_gateway()
    try:
        # The default keeps 30 days.
        await _until(lambda: _logged_ids() == ["req_days", "req_recent"], "the default 30-day pruning")
        _set_retention("1")
        await _until(lambda: _logged_ids() == ["req_recent"], "pruning after request_log_days = 1")
    finally:
        await server.close()


async def test_zero_keeps_every_request():
    _set_retention("0")
    _insert(_row(dt.timedelta(days=400), request_id="req_ancient"))
    server, url = await start_gateway()
    try:
        # A request logged after start shows that the writer has been through its prune step.
        oa = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=10)
        with pytest.raises(openai.NotFoundError):
            await oa.chat.completions.create(model="unmapped", messages=[{"role": "user", "content": "hi"}])
        await oa.close()
        await _until(lambda: len(_logged_ids()) == 2, "the request to be logged")
        assert _logged_ids()[0] == "req_ancient"
    finally:
        await server.close()


def test_retention_must_be_a_number():
    _set_retention('"forever"')
    result = cli("config", "validate", ok=False)
    assert result.exit_code == 1 and "server.request_log_days: must be a number" in result.output


@pytest.fixture
def varied_rows():
    hour = dt.timedelta(hours=1)
    _insert(
        _row(hour * 5, backend="a", latency_ms=1.0),  # outside a 1h window
        _row(dt.timedelta(minutes=1), backend="a", latency_ms=10.0, input_tokens=3, output_tokens=4),
        _row(dt.timedelta(minutes=2), backend="a", latency_ms=30.0, input_tokens=None, output_tokens=6, fallbacks=1),
        _row(dt.timedelta(minutes=3), backend="a", latency_ms=20.0, status=200, error_kind="client_disconnected"),
        _row(dt.timedelta(minutes=4), backend="a", latency_ms=None, status=502, fallbacks=2),
        _row(dt.timedelta(minutes=5), backend="a", latency_ms=40.0, error_kind=""),
        _row(dt.timedelta(minutes=6), backend=None, status=404, error_kind="model_not_found", latency_ms=2.0),
        _row(dt.timedelta(minutes=7), backend="b", latency_ms=5.0, input_tokens=7, output_tokens=None),
    )


def test_stats_figures(varied_rows):
    summary = json.loads(cli("stats", "--since", "1h", "--json").output)
    assert summary == {
        "since": "1h",
        "backends": [
            {"backend": "(none)", "requests": 1, "errors": 1, "failovers": 0, "failover_rate": 0.0,
             "p50_ms": 2.0, "p95_ms": 2.0, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "cache_write_tokens": 0,
             "cache_hit_ratio": None, "cost_usd": 0.0, "unknown_cost": 0},
            # latencies 10, 20, 30, 40 (one row has none): p50 is the value at round(0.5 * 3) = 2
            {"backend": "a", "requests": 5, "errors": 2, "failovers": 2, "failover_rate": 0.4,
             "p50_ms": 30.0, "p95_ms": 40.0, "input_tokens": 3, "output_tokens": 10, "cached_tokens": 0, "cache_write_tokens": 0,
             "cache_hit_ratio": 0.0, "cost_usd": 0.0, "unknown_cost": 5},
            {"backend": "b", "requests": 1, "errors": 0, "failovers": 0, "failover_rate": 0.0,
             "p50_ms": 5.0, "p95_ms": 5.0, "input_tokens": 7, "output_tokens": 0, "cached_tokens": 0, "cache_write_tokens": 0,
             "cache_hit_ratio": 0.0, "cost_usd": 0.0, "unknown_cost": 1},
        ],
    }
    everything = {s["backend"]: s["requests"] for s in json.loads(cli("stats", "--since", "1d", "--json").output)["backends"]}
    assert everything == {"(none)": 1, "a": 6, "b": 1}
    assert "no requests in the last 1s" in cli("stats", "--since", "1s").output


def test_status_counts_the_last_hour(varied_rows):
    report = json.loads(cli("status", "--json").output)
    assert report["requests_last_hour"] == {"total": 7, "errors": 3}
