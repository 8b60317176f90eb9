"""Keys clients present to the gateway. Only a hash is stored; the key is shown once, at creation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, replace

from mlxgw.errors import MlxgwError
from mlxgw.store import usage_limits
from mlxgw.store.database import bump_generation
from mlxgw.store.tables import ClientKey, db, utcnow
from mlxgw.store.usage_limits import Limits

PREFIX = "mgw-"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(name: str, limits: Limits = Limits()) -> str:
    key = PREFIX + secrets.token_urlsafe(32)
    with db.obj.atomic():  # the check inside the (IMMEDIATE) transaction: two creates cannot both pass it
        if ClientKey.get_or_none(ClientKey.name == name):
            raise MlxgwError(f"a client key named {name!r} already exists")
        ClientKey.create(name=name, key_hash=_hash(key), prefix=key[:8], **asdict(limits))
        usage_limits.forget(name)
        bump_generation()
    return key


def update(name: str, changes: dict, clear: set[str], now: float) -> Limits:
    """Set the limits in `changes` and remove those in `clear` (field names of `Limits`); the key's
    counters carry over, rescaled to a changed rate."""
    with db.obj.atomic():
        row = ClientKey.get_or_none(ClientKey.name == name)
        if row is None:
            raise MlxgwError(f"no client key named {name!r}")
        old = Limits.of(row)
        new = replace(old, **changes, **dict.fromkeys(clear))
        ClientKey.update(
            **asdict(new),
            rpm_clear_at=usage_limits.rescaled(row.rpm_clear_at, old.rpm, new.rpm, now),
            tpm_clear_at=usage_limits.rescaled(row.tpm_clear_at, old.tpm, new.tpm, now),
        ).where(ClientKey.name == name).execute()
        bump_generation()
    return new


def revoke(name: str) -> None:
    with db.obj.atomic():
        if ClientKey.delete().where(ClientKey.name == name).execute() == 0:
            raise MlxgwError(f"no client key named {name!r}")
        usage_limits.forget(name)
        bump_generation()


def listing() -> list[ClientKey]:
    return list(ClientKey.select().order_by(ClientKey.name))


def hashes() -> dict[str, str]:
    """hash -> name, for the daemon's in-memory check."""
    return {row.key_hash: row.name for row in ClientKey.select()}


def limited() -> set[str]:
    """The keys with any limit: only their requests ask the store before they are let in."""
    return {row.name for row in ClientKey.select() if Limits.of(row).any}


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
