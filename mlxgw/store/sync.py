"""TOML -> store sync: idempotent and transactional (a failing sync changes nothing)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mlxgw.config import ConfigEditor
from mlxgw.errors import CredentialError
from mlxgw.settings import MappingSettings, Settings
from mlxgw.store import credentials
from mlxgw.store.database import bump_generation
from mlxgw.store.tables import Credential, Mapping, db
from mlxgw.vault import Vault


@dataclass(frozen=True)
class KeyRedirect:
    """A backend whose base_url changed while a key is stored for it: the key now goes there."""

    backend: str
    old_url: str
    new_url: str

    def __str__(self) -> str:
        return (
            f"backend {self.backend!r} now sends its stored API key to {self.new_url} (its base_url was "
            f"{self.old_url}); if that server should not have it, run `mlxgw creds set {self.backend}`"
        )


@dataclass
class SyncReport:
    settings: Settings
    changed: bool = False
    keys_moved: list[str] = field(default_factory=list)  # api_key values moved from the TOML into the store
    redirected: list[KeyRedirect] = field(default_factory=list)


def _mapping_row(position: int, m: MappingSettings) -> dict:
    return {
        "position": position,
        "pattern": m.pattern,
        "backend": m.backend,
        "model": m.model,
        "fallbacks": json.dumps([str(t) for t in m.fallbacks]),
        "priority": m.priority,
        "enabled": m.enabled,
        "fallback_on": json.dumps(list(m.fallback_on)),
        "max_output_tokens": m.max_output_tokens,
        "over_budget": str(m.over_budget) if m.over_budget else None,
        "backends": json.dumps(list(m.backends)),
        "balance": m.balance if m.backends else None,
        "sticky_s": m.sticky_s,
    }


def _current_rows() -> list[dict]:
    fields = (
        "position", "pattern", "backend", "model", "fallbacks", "priority", "enabled", "fallback_on",
        "max_output_tokens", "over_budget", "backends", "balance", "sticky_s",
    )
    return [
        {f: getattr(r, f) for f in fields} for r in Mapping.select().order_by(Mapping.position)
    ]


def _stored_key(name: str, vault: Vault) -> str | None:
    try:
        return credentials.get_key(name, vault)
    except CredentialError:
        return None  # unreadable: a plaintext key in the config replaces it


def sync(settings: Settings, vault: Vault, *, rewrite_config: bool = True) -> SyncReport:
    """Make the store match `settings`. Plaintext `api_key`s are encrypted into the store and, with
    `rewrite_config` (the CLI's syncs), removed from the TOML file; the daemon only reads the file.
    Runs under the home's edit lock (mlxgw.workspace takes it)."""
    report = SyncReport(settings)
    rows = [_mapping_row(i, m) for i, m in enumerate(settings.mappings)]
    with db.obj.atomic():
        if rows != _current_rows():
            Mapping.delete().execute()
            if rows:
                Mapping.insert_many(rows).execute()
            report.changed = True
        for name, backend in settings.backends.items():
            row = Credential.get_or_none(Credential.backend == name)
            key = settings.plaintext_keys.get(name)
            if row is not None and row.encrypted_key and not key and row.base_url != backend.base_url:
                report.redirected.append(KeyRedirect(name, row.base_url, backend.base_url))
            new_key = key is not None and (row is None or _stored_key(name, vault) != key)
            if row is None or (row.type, row.base_url) != (backend.type, backend.base_url) or new_key:
                credentials.upsert(name, backend.type, backend.base_url, key, vault)
                report.changed = True
        if report.changed:
            bump_generation()
    if settings.plaintext_keys and rewrite_config:
        editor = ConfigEditor(settings.path)
        report.keys_moved = editor.strip_api_keys()
        report.settings = editor.save()
    return report
