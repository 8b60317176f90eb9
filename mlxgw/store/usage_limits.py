"""Client keys' limits and their counters, kept in the store so that they survive a restart.

Requests and tokens per minute are token buckets in GCRA form: one number per key and limit, the
Unix time by which everything taken so far is paid off at the limit's rate. A request is let in by
one conditional UPDATE of that number (portable SQL: two requests at once cannot both take the last
slot, on SQLite as on Postgres). A key with `rpm = N` may send N requests at once, then one every
60/N s. Tokens per minute count a request's input and output once it has finished (nobody knows its
output before): a key whose bucket is full is refused until it drains, a request in flight runs on.

Budgets are USD per UTC day and month, summed from the day rows of `KeyUsage`, which the request
log's writer adds each finished request's cost to. Requests already running when a key reaches its
budget finish, and count.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, fields

from peewee import EXCLUDED, Case

from mlxgw.errors import MlxgwError, OverLimit
from mlxgw.store.tables import ClientKey, KeyUsage, db

WINDOW_S = 60.0  # the "per minute" of rpm and tpm
SLACK_S = 1e-6  # float rounding must not refuse the last of N requests that arrive at one instant
RATE_LIMITED = "rate_limit_exceeded"
BUDGET_EXCEEDED = "budget_exceeded"


@dataclass(frozen=True)
class Limits:
    """A client key's limits; None: no such limit."""

    rpm: int | None = None
    tpm: int | None = None
    daily_usd: float | None = None
    monthly_usd: float | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise MlxgwError(f"--{name} must be at least 1 (revoke the key to stop it altogether)")
        for name in ("daily_usd", "monthly_usd"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise MlxgwError(f"--{name.replace('_', '-')} must be 0 (local models only) or more")

    @classmethod
    def of(cls, row: ClientKey) -> Limits:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))


def _utc(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.UTC)


def _clock(seconds: float) -> str:
    """A wait as people say it: 45 s, 12 min, 5 h 3 min, 3 d 4 h."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _bucket_start(column, now: float):
    """The bucket's clear time, or now if it is already clear (portable: no MAX/GREATEST)."""
    return Case(None, [(column > now, column)], now)


def admit(name: str, now: float) -> OverLimit | None:
    """Let one request of client key `name` in at Unix time `now`, or raise OverLimit when the key
    is over its rpm or tpm. Returns the budget it is over, if any: the dispatcher decides whether a
    local model answers it instead or it is refused."""
    with db.obj.atomic():
        key = ClientKey.get_or_none(ClientKey.name == name)
        if key is None:  # revoked since the daemon last loaded its keys: auth refuses it next time
            return None
        if key.tpm is not None and key.tpm_clear_at - now >= WINDOW_S:
            wait = key.tpm_clear_at - WINDOW_S - now
            raise OverLimit(
                f"client key {name!r} has used its {key.tpm} tokens per minute; try again in {_clock(wait)}",
                retry_after=wait,
                code=RATE_LIMITED,
            )
        if key.rpm is not None:
            start = _bucket_start(ClientKey.rpm_clear_at, now)
            step = WINDOW_S / ClientKey.rpm
            taken = (
                ClientKey.update(rpm_clear_at=start + step)
                .where((ClientKey.name == name) & ClientKey.rpm.is_null(False) & (start + step <= now + WINDOW_S + SLACK_S))
                .execute()
            )
            if not taken:
                wait = max(key.rpm_clear_at, now) + WINDOW_S / key.rpm - WINDOW_S - now
                raise OverLimit(
                    f"client key {name!r} is over its limit of {key.rpm} requests per minute; try again in {_clock(wait)}",
                    retry_after=wait,
                    code=RATE_LIMITED,
                )
        return _over_budget(key, now)


def _over_budget(key: ClientKey, now: float) -> OverLimit | None:
    if key.daily_usd is None and key.monthly_usd is None:
        return None
    spent = spending([key.name], now)[key.name]
    today = _utc(now).replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + dt.timedelta(days=1)
    next_month = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    over = [
        (period, used, limit, (renews - _utc(now)).total_seconds())
        for period, used, limit, renews in (
            ("daily", spent["today_usd"], key.daily_usd, tomorrow),
            ("monthly", spent["month_usd"], key.monthly_usd, next_month),
        )
        if limit is not None and used >= limit
    ]
    if not over:
        return None
    # Over both: only the later renewal lets the key spend again.
    period, used, limit, wait = max(over, key=lambda o: o[3])
    return OverLimit(
        f"client key {key.name!r} has spent ${used:.2f} of its {period} budget of ${limit:.2f}; "
        f"it renews in {_clock(wait)} (UTC)",
        retry_after=wait,
        code=BUDGET_EXCEEDED,
    )


def spending(names: list[str], now: float) -> dict[str, dict]:
    """Per key: today's requests, tokens and cost, and this month's cost (UTC days)."""
    today = _utc(now).date()
    out = {name: {"today_requests": 0, "today_tokens": 0, "today_usd": 0.0, "month_usd": 0.0} for name in names}
    rows = (
        KeyUsage.select(KeyUsage.key, KeyUsage.day, KeyUsage.requests, KeyUsage.tokens, KeyUsage.cost_usd)
        .where(KeyUsage.key.in_(names) & (KeyUsage.day >= today.replace(day=1)))
    )
    for row in rows:
        entry = out[row.key]
        entry["month_usd"] += row.cost_usd
        if row.day == today:
            entry.update(today_requests=row.requests, today_tokens=row.tokens, today_usd=row.cost_usd)
    return out


def in_use(key: ClientKey, now: float) -> dict[str, int | None]:
    """How much of its rpm and tpm the key holds now (what its buckets have not yet paid off)."""
    return {
        "rpm_used": math.ceil(max(0.0, key.rpm_clear_at - now) * key.rpm / WINDOW_S - 1e-9) if key.rpm else None,
        "tpm_used": round(max(0.0, key.tpm_clear_at - now) * key.tpm / WINDOW_S) if key.tpm else None,
    }


def charge(rows: list[dict], now: float) -> None:
    """Add finished requests (request log rows) to their keys' counters: the day's requests, tokens
    and cost, and the token bucket of a key with a tpm. Inside the caller's transaction."""
    totals: dict[str, list] = defaultdict(lambda: [0, 0, 0.0])
    for row in rows:
        if row.get("client_key"):
            total = totals[row["client_key"]]
            total[0] += 1
            total[1] += (row.get("input_tokens") or 0) + (row.get("output_tokens") or 0)
            total[2] += row.get("cost_usd") or 0.0
    day = _utc(now).date()
    for name, (requests, tokens, cost) in totals.items():
        KeyUsage.insert(key=name, day=day, requests=requests, tokens=tokens, cost_usd=cost).on_conflict(
            conflict_target=[KeyUsage.key, KeyUsage.day],
            update={
                KeyUsage.requests: KeyUsage.requests + EXCLUDED.requests,
                KeyUsage.tokens: KeyUsage.tokens + EXCLUDED.tokens,
                KeyUsage.cost_usd: KeyUsage.cost_usd + EXCLUDED.cost_usd,
            },
        ).execute()
        if tokens:
            start = _bucket_start(ClientKey.tpm_clear_at, now)
            ClientKey.update(tpm_clear_at=start + tokens * WINDOW_S / ClientKey.tpm).where(
                (ClientKey.name == name) & ClientKey.tpm.is_null(False)
            ).execute()


def rescaled(clear_at: float, old: int | None, new: int | None, now: float) -> float:
    """A bucket's clear time under a new rate: what it holds stays, paid off at the new rate."""
    if old is None or new is None or clear_at <= now:
        return 0.0
    return now + (clear_at - now) * old / new


def forget(name: str) -> None:
    """Drop a revoked key's counters: a new key of the same name starts afresh."""
    KeyUsage.delete().where(KeyUsage.key == name).execute()

