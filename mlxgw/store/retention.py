"""Tables kept for a configured number of days (the request log, stored Responses answers): when
to prune them, and the batched DELETE that does it."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable

from peewee import Field

from mlxgw.store.tables import utcnow

PRUNE_EVERY_S = 3600.0


class Retention:
    """Prunes at start, hourly and whenever `days()` changes (0: keeps all). `prune(before)` deletes
    the rows older than `before` and returns how many; `what` names them in the log."""

    def __init__(self, days: Callable[[], float], prune: Callable[[dt.datetime], int], what: str,
                 log: logging.Logger) -> None:
        self._days = days
        self._prune = prune
        self._what = what
        self._log = log
        self._last: tuple[float, float] | None = None  # (monotonic time, days) of the last prune

    async def prune_if_due(self, run: Callable[..., Awaitable[int]]) -> None:
        """Prune now if due, with `run(fn, *args)` running the store call on the store's thread."""
        days = self._days()
        now = time.monotonic()
        if self._last is not None and self._last[1] == days and now - self._last[0] < PRUNE_EVERY_S:
            return
        self._last = (now, days)
        if days <= 0:
            return
        try:
            removed = await run(self._prune, utcnow() - dt.timedelta(days=days))
        except Exception:
            self._log.exception("could not prune the %s", self._what)
            return
        if removed:
            self._log.info("%s: removed %d older than %g day(s)", self._what, removed, days)


def delete_older(key: Field, stamp: Field, before: dt.datetime, batch: int) -> int:
    """Delete the rows of `key`'s table whose `stamp` is before `before`, `batch` rows per DELETE
    (writers meanwhile never wait long for the store); returns how many."""
    table = key.model
    removed = 0
    while True:
        count = table.delete().where(key.in_(table.select(key).where(stamp < before).limit(batch))).execute()
        removed += count
        if count < batch:
            return removed
