"""Stored Responses answers: what `previous_response_id` continues and `GET /v1/responses/{id}`
shows, kept off the request path and pruned to [server] responses_days."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from peewee import Expression

from mlxgw.store.retention import Retention, delete_older
from mlxgw.store.tables import StoredResponse, db, utcnow

log = logging.getLogger("mlxgw.responses")

PRUNE_BATCH = 1000

T = TypeVar("T")


@dataclass
class Stored:
    response: dict  # the Response object
    input_items: list  # every input item it answered, earlier turns included


class ResponseStore:
    """Reads and writes on one background thread, in the order they were asked: a response being
    kept is found by the next request that names it, though the client has it before the store does.
    At start, hourly and whenever `retention_days()` changes, deletes those older than that many
    days (0: keeps all)."""

    def __init__(self, retention_days: Callable[[], float]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlxgw-responses")
        self._retention = Retention(retention_days, _prune, "stored responses", log)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    def keep(self, response: dict, input_items: list, owner: str) -> None:
        """Queue a response to be stored as `owner`'s; a failure is logged, never the request's."""
        self._executor.submit(_logged, _save, response, input_items, owner)

    async def get(self, response_id: str, owner: str) -> Stored | None:
        """The response, if `owner` kept it: another owner's is as missing as an unknown id."""
        return await self._call(_get, response_id, owner)

    async def delete(self, response_id: str, owner: str) -> bool:
        return await self._call(_delete, response_id, owner)

    async def _call(self, fn: Callable[..., T], *args) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, _closing, fn, *args)

    async def _run(self) -> None:
        while True:
            await self._retention.prune_if_due(self._call)
            await asyncio.sleep(1.0)


def _closing(fn: Callable[..., T], *args) -> T:
    try:
        return fn(*args)
    finally:
        db.obj.close()  # this thread's connection; the next call opens its own


def _logged(fn: Callable[..., None], *args) -> None:
    try:
        _closing(fn, *args)
    except Exception:
        log.exception("could not store a response")


def _save(response: dict, input_items: list, owner: str) -> None:
    StoredResponse.insert(
        response_id=response["id"],
        created_at=utcnow(),
        response=json.dumps(response, ensure_ascii=False),
        input_items=json.dumps(input_items, ensure_ascii=False),
        owner=owner,
    ).on_conflict(
        conflict_target=[StoredResponse.response_id],
        preserve=[StoredResponse.created_at, StoredResponse.response, StoredResponse.input_items],
        where=_owned_by(owner),  # an id kept again by another owner does not become theirs
    ).execute()


def _owned_by(owner: str) -> Expression:
    if owner == "":  # no client keys: the rows kept before owners were (NULL) are unowned too
        return StoredResponse.owner.is_null() | (StoredResponse.owner == "")
    return StoredResponse.owner == owner


def _get(response_id: str, owner: str) -> Stored | None:
    row = StoredResponse.get_or_none((StoredResponse.response_id == response_id) & _owned_by(owner))
    if row is None:
        return None
    return Stored(json.loads(row.response), json.loads(row.input_items))


def _delete(response_id: str, owner: str) -> bool:
    return StoredResponse.delete().where((StoredResponse.response_id == response_id) & _owned_by(owner)).execute() > 0


def _prune(before: dt.datetime) -> int:
    return delete_older(StoredResponse.response_id, StoredResponse.created_at, before, PRUNE_BATCH)
