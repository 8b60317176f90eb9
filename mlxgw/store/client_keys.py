"""Keys clients present to the gateway. Only a hash is stored; the key is shown once, at creation."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from mlxgw.errors import MlxgwError
from mlxgw.store.database import bump_generation
from mlxgw.store.tables import ClientKey, db, utcnow

PREFIX = "mgw-"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(name: str) -> str:
    key = PREFIX + secrets.token_urlsafe(32)
    with db.obj.atomic():  # the check inside the (IMMEDIATE) transaction: two creates cannot both pass it
        if ClientKey.get_or_none(ClientKey.name == name):
            raise MlxgwError(f"a client key named {name!r} already exists")
        ClientKey.create(name=name, key_hash=_hash(key), prefix=key[:8])
        bump_generation()
    return key


def revoke(name: str) -> None:
    with db.obj.atomic():
        if ClientKey.delete().where(ClientKey.name == name).execute() == 0:
            raise MlxgwError(f"no client key named {name!r}")
        bump_generation()


def listing() -> list[ClientKey]:
    return list(ClientKey.select().order_by(ClientKey.name))


def hashes() -> dict[str, str]:
    """hash -> name, for the daemon's in-memory check."""
    return {row.key_hash: row.name for row in ClientKey.select()}


def match(presented: str, known: dict[str, str]) -> str | None:
    """The name of the key `presented` matches, compared in constant time against every hash."""
    digest = _hash(presented)
    found = None
    for key_hash, name in known.items():
        if hmac.compare_digest(digest, key_hash):
            found = name
    return found


def touch(name: str) -> None:
    ClientKey.update(last_used_at=utcnow()).where(ClientKey.name == name).execute()
