"""Client keys: once one exists, every /v1 request must present one; a daemon bound to a network
address answers no /v1 request while it has none."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from peewee import DatabaseError

from mlxgw.errors import GatewayError, OverLimit
from mlxgw.server.appkeys import SETTINGS, STATE
from mlxgw.server.middleware import CLIENT_KEY, OVER_BUDGET
from mlxgw.store import client_keys, usage_limits
from mlxgw.store.tables import db

log = logging.getLogger("mlxgw.server")


@web.middleware
async def auth(request: web.Request, handler) -> web.StreamResponse:
    """Once any client key exists, every /v1 request must present one. A daemon bound to a network
    address refuses /v1 requests while it has none (revoking the last key must not open it up)."""
    if request.path.startswith("/v1/"):
        require_client_key(request)
    return await handler(request)


def require_client_key(request: web.Request) -> None:
    """The /v1 rule, for any endpoint that follows it (`/metrics` too)."""
    state = request.app[STATE]
    if state.client_keys:
        presented = presented_key(request)
        if not presented:
            raise GatewayError("authentication", "missing API key: send `Authorization: Bearer <key>` or `x-api-key`")
        name = client_keys.match(presented, state.client_keys)
        if name is None:
            raise GatewayError("authentication", "invalid API key")
        _note_use(state.key_last_used, name)
        request[CLIENT_KEY] = name
    elif request.app[SETTINGS].server.needs_keys:
        raise GatewayError(
            "authentication",
            f"this gateway listens on {request.app[SETTINGS].server.host}, a network address, and has no client "
            "keys, so it answers no one: create one with `mlxgw keys create NAME` and send it as "
            "`Authorization: Bearer <key>` or `x-api-key`",
        )


def presented_key(request: web.Request) -> str:
    """The client key in `x-api-key` or `Authorization: Bearer`, or ""."""
    presented = request.headers.get("x-api-key") or ""
    bearer = request.headers.get("authorization", "")
    if not presented and bearer[:7].lower() == "bearer ":
        presented = bearer[7:].strip()
    return presented


def has_valid_key(request: web.Request) -> bool:
    known = request.app[STATE].client_keys
    presented = presented_key(request)
    return bool(known and presented and client_keys.match(presented, known) is not None)


KEY_USE_RESOLUTION_S = 60.0  # `keys list` shows last use to the minute: no write per request


def _note_use(last_used: dict[str, float], name: str) -> None:
    now = time.monotonic()
    if now - last_used.get(name, -KEY_USE_RESOLUTION_S) >= KEY_USE_RESOLUTION_S:
        last_used[name] = now
        # Off the event loop: a store another process keeps busy would hold every request up to
        # SQLite's busy timeout, then fail this one; the last use is bookkeeping, not the answer.
        asyncio.get_running_loop().run_in_executor(None, _touch, name)


async def admit(request: web.Request) -> None:
    """Let a chat request in under its client key's limits (rpm, tpm, budgets), or raise OverLimit
    (429). A key over a budget is let in with OVER_BUDGET set: only a local model may answer it.
    Listing models and counting tokens are not limited. Off the event loop, as `_touch` is: the
    counters are a store write that another process may hold up for seconds."""
    name = request.get(CLIENT_KEY)
    if name not in request.app[STATE].limited_keys:
        return
    try:
        over_budget = await asyncio.get_running_loop().run_in_executor(None, _admit_now, name)
    except DatabaseError as exc:
        # Limits that cannot be checked are not waived: the caller may retry.
        log.warning("could not check the limits of client key %r: %s", name, exc)
        raise GatewayError("unavailable", "the gateway could not check this key's limits (its store is busy); try again") from None
    if over_budget is not None:
        request[OVER_BUDGET] = over_budget


def _admit_now(name: str) -> OverLimit | None:
    try:
        return usage_limits.admit(name, time.time())
    finally:
        db.obj.close()  # this worker thread's connection


def _touch(name: str) -> None:
    try:
        client_keys.touch(name)
    except Exception as exc:
        log.warning("could not record the use of client key %r: %s", name, exc)
    finally:
        db.obj.close()  # this worker thread's connection
