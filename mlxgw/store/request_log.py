"""The request log: one row per client request, written in batches off the request path, and the
queries behind `mlxgw log` and `mlxgw stats`."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor

from mlxgw.store.models import RequestLog, db

log = logging.getLogger("mlxgw.requestlog")

FLUSH_EVERY_S = 0.5
BATCH = 200


class RequestLogWriter:
    """Queues rows and inserts them in batches on one background thread."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[dict] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlxgw-log")
        self._task: asyncio.Task | None = None

    def add(self, row: dict) -> None:
        self._queue.put_nowait(row)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            await self.flush()

    async def flush(self) -> None:
        while not self._queue.empty():
            rows = [self._queue.get_nowait() for _ in range(min(BATCH, self._queue.qsize()))]
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, _insert, rows)
            except Exception:
                log.exception("could not write %d request log row(s)", len(rows))

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()
        self._executor.shutdown(wait=True)


def _insert(rows: list[dict]) -> None:
    with db.obj.atomic():
        RequestLog.insert_many(rows).execute()
    db.obj.close()  # this thread's connection; the next batch opens its own


def tail(n: int, after_id: int = 0) -> list[RequestLog]:
    query = RequestLog.select().where(RequestLog.id > after_id).order_by(RequestLog.id.desc()).limit(n)
    return list(reversed(list(query)))


def since(start: dt.datetime) -> list[RequestLog]:
    return list(RequestLog.select().where(RequestLog.time >= start).order_by(RequestLog.id))
