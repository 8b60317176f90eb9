"""The request log: one row per client request, written in batches off the request path and pruned
to the configured number of days, and the queries (SQL aggregates) behind `mlxgw log`, `stats` and
`status` and the dashboard's `/mlxgw/requests` and `/mlxgw/stats`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from peewee import SQL, Case, PostgresqlDatabase, fn

from mlxgw.errors import MlxgwError
from mlxgw.store import usage_limits
from mlxgw.store.retention import Retention, delete_older
from mlxgw.store.tables import RequestLog, db

log = logging.getLogger("mlxgw.requestlog")

FLUSH_EVERY_S = 0.5
BATCH = 200
PRUNE_BATCH = 5000  # rows per DELETE: requests being logged meanwhile never wait long for the store

T = TypeVar("T")


class RequestLogWriter:
    """Queues rows and inserts them in batches on one background thread; at start, hourly and
    whenever `retention_days()` changes, deletes rows older than that many days (0: keeps all)."""

    def __init__(self, retention_days: Callable[[], float], replica: Callable[[], str | None] = lambda: None) -> None:
        self._replica = replica  # this gateway's name on each row: replicas sharing a store log into one table
        self._queue: asyncio.Queue[dict] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlxgw-log")
        self._task: asyncio.Task | None = None
        self._retention = Retention(retention_days, _prune, "request log", log)

    def add(self, row: dict) -> None:
        self._queue.put_nowait({**row, "replica": self._replica()})

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._retention.prune_if_due(self._call)
            await asyncio.sleep(FLUSH_EVERY_S)
            await self.flush()

    async def _call(self, fn: Callable[..., T], *args) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def flush(self) -> None:
        while not self._queue.empty():
            rows = [self._queue.get_nowait() for _ in range(min(BATCH, self._queue.qsize()))]
            try:
                await self._call(_insert, rows)
            except Exception:
                log.exception("could not write %d request log row(s)", len(rows))

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()
        self._executor.shutdown(wait=True)


def _insert(rows: list[dict]) -> None:
    with db.obj.atomic():  # the rows and their keys' counters together, or neither
        RequestLog.insert_many(rows).execute()
        usage_limits.charge(rows, time.time())
    db.obj.close()  # this thread's connection; the next batch opens its own


def _prune(before: dt.datetime) -> int:
    try:
        return delete_older(RequestLog.id, RequestLog.time, before, PRUNE_BATCH)
    finally:
        db.obj.close()


def tail(n: int, after_id: int = 0) -> list[RequestLog]:
    """The newest `n` rows after `after_id`, oldest first."""
    query = RequestLog.select().where(RequestLog.id > after_id).order_by(RequestLog.id.desc()).limit(n)
    return list(reversed(list(query)))


def as_json(r: RequestLog) -> dict:
    """One row as `mlxgw log --json` prints it and `/mlxgw/requests` returns it."""
    return {
        "id": r.id,
        "time": r.time.isoformat(timespec="milliseconds") + "Z",
        "request_id": r.request_id,
        "protocol": r.protocol,
        "requested_model": r.requested_model,
        "backend": r.backend,
        "model": r.model,
        "attempts": json.loads(r.attempts),
        "status": r.status,
        "stream": r.stream,
        "latency_ms": r.latency_ms,
        "ttft_ms": r.ttft_ms,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cached_tokens": r.cached_tokens,
        "cache_write_tokens": r.cache_write_tokens,
        "prefill_ms": r.prefill_ms,
        "error": r.error_kind,
        "client_key": r.client_key,
        "cost_usd": r.cost_usd,
        "replica": r.replica,
        "sticky": r.sticky,
    }


def parse_window(text: str) -> dt.timedelta:
    """A window such as 30m, 1h or 7d (`--since`, `?since=`)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not m:
        raise MlxgwError(f"bad --since {text!r}: use a number and s, m, h or d, e.g. 30m or 1h")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
    return dt.timedelta(**{unit: float(m.group(1))})


# Chart buckets: the smallest of these that cuts a window into at most MAX_BUCKETS.
BUCKETS_S = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 120


def bucket_for(window: dt.timedelta) -> int:
    seconds = window.total_seconds()
    return next((b for b in BUCKETS_S if seconds / b <= MAX_BUCKETS), BUCKETS_S[-1])


def series(start: dt.datetime, bucket_s: int) -> list[dict]:
    """Requests, errors and tokens since `start` per time bucket (`t`: its start, Unix seconds),
    requested model and serving backend ("(none)" when nothing served it), oldest first."""
    t = (_epoch_s(RequestLog.time) / bucket_s) * bucket_s
    model = fn.COALESCE(fn.NULLIF(RequestLog.requested_model, ""), "(none)")
    backend = fn.COALESCE(fn.NULLIF(RequestLog.backend, ""), "(none)")
    query = (
        RequestLog.select(
            t.alias("t"),
            model.alias("model"),
            backend.alias("backend"),
            fn.COUNT(RequestLog.id).alias("requests"),
            _count_if(FAILED).alias("errors"),
            fn.SUM(fn.COALESCE(RequestLog.input_tokens, 0)).alias("input_tokens"),
            fn.SUM(fn.COALESCE(RequestLog.output_tokens, 0)).alias("output_tokens"),
        )
        .where(RequestLog.time >= start)
        .group_by(*_positions(3))
        .order_by(SQL("1"))
        .dicts()
    )
    return list(query)


def _epoch_s(column):
    """A time column in whole Unix seconds (SQLite's strftime('%s') is whole, PostgreSQL's epoch is not)."""
    if isinstance(db.obj, PostgresqlDatabase):
        return fn.FLOOR(db.to_timestamp(column)).cast("BIGINT")
    return db.to_timestamp(column)


def _positions(n: int) -> list[SQL]:
    """GROUP BY the first `n` selected columns by position: PostgreSQL does not match an expression
    repeated with parameters ($1 in SELECT, $3 in GROUP BY) to itself."""
    return [SQL(str(i)) for i in range(1, n + 1)]


def _count_if(condition):
    return fn.SUM(Case(None, [(condition, 1)], 0))


# Failed: an error status, or an error noted on a 200 (e.g. a stream cut short).
FAILED = (RequestLog.status >= 400) | (RequestLog.error_kind.is_null(False) & (RequestLog.error_kind != ""))


def counts(start: dt.datetime) -> dict[str, int]:
    """How many requests since `start`, and how many of them failed."""
    total, errors = (
        RequestLog.select(fn.COUNT(RequestLog.id), _count_if(FAILED)).where(RequestLog.time >= start).scalar(as_tuple=True)
    )
    return {"total": total, "errors": errors or 0}


def _named(column):
    return fn.COALESCE(fn.NULLIF(column, ""), "(none)")


# What `summary` can group by: the backend and model that answered, the client key, the gateway
# replica that served it, the UTC day.
GROUPS = {
    "backend": _named(RequestLog.backend),
    "model": _named(RequestLog.model),
    "key": _named(RequestLog.client_key),
    "replica": _named(RequestLog.replica),
    "day": fn.DATE(RequestLog.time).coerce(False),  # "2026-05-01", not read back as a datetime
}


def summary(start: dt.datetime, by: tuple[str, ...] = ("backend",)) -> list[dict]:
    """Per group of `by` (GROUPS; None: "(none)") since `start`: requests, errors, failovers,
    latency p50/p95, tokens, the cache hit ratio (prompt tokens read from a cache, of all prompt
    tokens: input, cache reads and writes) and cost (`unknown_cost`: answered requests whose model
    has no price or whose backend reported no usage: they count $0 in `cost_usd`)."""
    keys = [GROUPS[name] for name in by]
    groups = (
        RequestLog.select(
            *(key.alias(name) for name, key in zip(by, keys, strict=True)),
            fn.COUNT(RequestLog.id).alias("requests"),
            _count_if(FAILED).alias("errors"),
            _count_if(RequestLog.fallbacks != 0).alias("failovers"),
            fn.COUNT(RequestLog.latency_ms).alias("timed"),
            fn.SUM(fn.COALESCE(RequestLog.input_tokens, 0)).alias("input_tokens"),
            fn.SUM(fn.COALESCE(RequestLog.output_tokens, 0)).alias("output_tokens"),
            fn.SUM(fn.COALESCE(RequestLog.cached_tokens, 0)).alias("cached_tokens"),
            fn.SUM(fn.COALESCE(RequestLog.cache_write_tokens, 0)).alias("cache_write_tokens"),
            fn.SUM(fn.COALESCE(RequestLog.cost_usd, 0)).alias("cost_usd"),
            _count_if(RequestLog.backend.is_null(False) & RequestLog.cost_usd.is_null()).alias("unknown_cost"),
        )
        .where(RequestLog.time >= start)
        .group_by(*_positions(len(keys)))
        .dicts()
    )
    out = []
    for g in sorted(groups, key=lambda g: tuple(str(g[name]) for name in by)):
        prompt = g["input_tokens"] + g["cached_tokens"] + g["cache_write_tokens"]
        latency = (RequestLog.time >= start) & RequestLog.latency_ms.is_null(False)
        for name, key in zip(by, keys, strict=True):
            latency &= key == g[name]
        out.append({
            **{name: str(g[name]) for name in by},
            "requests": g["requests"],
            "errors": g["errors"],
            "failovers": g["failovers"],
            "failover_rate": round(g["failovers"] / g["requests"], 4),
            "p50_ms": _percentile(latency, g["timed"], 0.5),
            "p95_ms": _percentile(latency, g["timed"], 0.95),
            "input_tokens": g["input_tokens"],
            "output_tokens": g["output_tokens"],
            "cached_tokens": g["cached_tokens"],
            "cache_write_tokens": g["cache_write_tokens"],
            "cache_hit_ratio": round(g["cached_tokens"] / prompt, 4) if prompt else None,
            "cost_usd": round(g["cost_usd"] or 0.0, 6),
            "unknown_cost": g["unknown_cost"] or 0,
        })
    return out


def _percentile(where, n: int, q: float) -> float | None:
    """The latency at rank round(q * (n - 1)) of the `n` rows `where` selects, found by SQLite's sort."""
    if not n:
        return None
    rank = min(n - 1, round(q * (n - 1)))
    return RequestLog.select(RequestLog.latency_ms).where(where).order_by(RequestLog.latency_ms).offset(rank).limit(1).scalar()
