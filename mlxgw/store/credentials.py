"""Backend credentials: Fernet-encrypted API keys, one row per backend."""

from __future__ import annotations

from peewee import Database

from mlxgw.errors import CredentialError
from mlxgw.store.database import bump_generation
from mlxgw.store.tables import Credential, db, utcnow
from mlxgw.vault import Vault


def mask(key: str) -> str:
    """Enough of a key to recognise it ("sk-…abcd"), too little to use it."""
    head = key[:3] if len(key) >= 12 else ""
    tail = key[-4:] if len(key) >= 12 else ""
    return f"{head}…{tail}"


def upsert(name: str, btype: str, base_url: str, key: str | None, vault: Vault) -> None:
    """Store (or update) a backend's credential; `key=None` keeps the key already stored."""
    now = utcnow()
    row = Credential.get_or_none(Credential.backend == name)
    if row is None:
        row = Credential(backend=name, created_at=now)
    row.type, row.base_url, row.updated_at = btype, base_url, now
    if key is not None:
        row.encrypted_key = vault.encrypt(key)
        row.key_hint = mask(key)
    row.save()


def clear_key(name: str) -> None:
    """Forget the key stored for backend `name` (the backend itself stays)."""
    Credential.update(encrypted_key=None, key_hint=None, updated_at=utcnow()).where(Credential.backend == name).execute()


def remove(name: str) -> bool:
    return Credential.delete().where(Credential.backend == name).execute() > 0


def get_key(name: str, vault: Vault) -> str | None:
    row = Credential.get_or_none(Credential.backend == name)
    if row is None or not row.encrypted_key:
        return None
    return vault.decrypt(row.encrypted_key, name)


def listing() -> list[Credential]:
    return list(Credential.select().order_by(Credential.backend))


def rotate(vault: Vault) -> int:
    """Re-encrypt every stored key under a new secret key, all or nothing. Returns how many."""
    fernet = vault.begin_rotation()
    database: Database = db.obj
    rows = [r for r in Credential.select() if r.encrypted_key]
    with database.atomic():
        for row in rows:
            try:
                row.encrypted_key = fernet.rotate(row.encrypted_key.encode()).decode()
            except Exception:
                raise CredentialError(
                    f"cannot decrypt credential {row.backend}: wrong or missing secret key; nothing was changed"
                ) from None
            row.save()
        bump_generation()
    vault.finish_rotation()
    return len(rows)
