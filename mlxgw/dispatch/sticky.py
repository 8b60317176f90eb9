"""Sticky failover: a session whose request failed over to a fallback stays on that fallback for the
mapping's `sticky_s`, so an agent does not bounce between two models turn by turn; after that (or
once the chain's first choice answers it again) the chain's own order is back.

A session is what the client says it is: Claude Code's `metadata.user_id` (which embeds its session
id), Codex's `session-id` header or `prompt_cache_key`, else the client key and the model asked
for (no key and no session: nothing sticks); always under the client key, so one client never
moves another's requests. Kept per gateway
process, in memory, bounded: the least recently used sessions go first."""

from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from mlxgw.canonical import ChatRequest
from mlxgw.dispatch.route_table import Attempt

MAX_SESSIONS = 10_000
# Claude Code before its JSON user_id: "user_<hash>_account_<uuid>_session_<uuid>".
_SESSION_SUFFIX = re.compile(r"_session_([0-9A-Za-z-]+)$")
SESSION_HEADERS = ("session-id", "session_id")


def session_of(request: ChatRequest, client_key: str | None) -> str | None:
    """The request's session, or None: a client that names no session and presents no key is not
    told apart from any other (every caller of a gateway without keys would be one session)."""
    raw = request.raw if isinstance(request.raw, dict) else {}
    metadata = raw.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id:
        named = f"claude:{_claude_session(user_id) or user_id}"
    elif header := next((request.client_headers[h] for h in SESSION_HEADERS if request.client_headers.get(h)), None):
        named = f"session:{header}"
    elif cache_key := request.prompt_cache_key or raw.get("prompt_cache_key"):
        named = f"session:{cache_key}"
    elif client_key:
        named = f"model:{request.model}"
    else:
        return None
    return f"{client_key or ''}\n{named}"


def _claude_session(user_id: str) -> str | None:
    try:
        parsed = json.loads(user_id)
    except ValueError:
        found = _SESSION_SUFFIX.search(user_id)
        return found.group(1) if found else None
    session = parsed.get("session_id") if isinstance(parsed, dict) else None
    return session if isinstance(session, str) and session else None


@dataclass(frozen=True)
class _Stuck:
    attempt: Attempt
    until: float


class Sticky:
    """Sessions (under each mapping's pattern) → the fallback that answered them, until when."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, capacity: int = MAX_SESSIONS) -> None:
        self._clock = clock
        self._capacity = capacity
        self._sessions: OrderedDict[tuple[str, str], _Stuck] = OrderedDict()

    def get(self, pattern: str, session: str) -> Attempt | None:
        key = (pattern, session)
        stuck = self._sessions.get(key)
        if stuck is None:
            return None
        if stuck.until <= self._clock():
            del self._sessions[key]
            return None
        self._sessions.move_to_end(key)
        return stuck.attempt

    def stick(self, pattern: str, session: str, attempt: Attempt, seconds: float) -> None:
        key = (pattern, session)
        self._sessions[key] = _Stuck(attempt, self._clock() + seconds)
        self._sessions.move_to_end(key)
        while len(self._sessions) > self._capacity:
            self._sessions.popitem(last=False)

    def forget(self, pattern: str, session: str) -> None:
        self._sessions.pop((pattern, session), None)
