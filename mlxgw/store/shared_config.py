"""Replicas on one shared (PostgreSQL) store: the config's shared part, `[backends]`,
`[[mappings]]` and `[pricing]`, lives in the store, and each replica's TOML holds a copy of it
beside its own sections (`[server]`, `[local]`, `[store]`).

The rule, applied under the store's lock whenever a replica reads its config: the store's copy is
the truth. A replica's file that still matches what this replica last saw (`base`) takes the
store's copy (another replica changed it); a file changed here while the store's copy did not
change is pushed (a CLI edit, or a hand edit, on this replica); when both changed, the store wins
and a warning says so. The daemon never writes its file: it reads the merge in memory. So two
replicas never fight: every change is made against the store's latest copy, one at a time.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import tomlkit

from mlxgw import paths
from mlxgw.config import parse_settings, read_document
from mlxgw.fsutil import write_atomic
from mlxgw.settings import Settings
from mlxgw.store.database import bump_generation, put_meta
from mlxgw.store.tables import Meta

log = logging.getLogger("mlxgw.store")

SHARED = ("backends", "mappings", "pricing")  # [pricing] too: the shared budgets count one price
META_KEY = "shared_config"


def _shared(data: dict) -> dict:
    """The shared part of a config's data, without plaintext keys (those go to the credentials)."""
    backends = data.get("backends", {})
    if isinstance(backends, dict):
        backends = {n: {k: v for k, v in b.items() if k != "api_key"} if isinstance(b, dict) else b
                    for n, b in backends.items()}
    return {"backends": backends, "mappings": data.get("mappings", []), "pricing": data.get("pricing", {})}


def _canon(shared: dict) -> str:
    return json.dumps(shared, sort_keys=True, ensure_ascii=False)


EMPTY = _canon(_shared({}))


def _base_path() -> Path:
    return paths.home() / "shared-config.json"


def _read_base() -> str | None:
    try:
        return _base_path().read_text(encoding="utf-8")
    except OSError:
        return None


def _with_shared(doc: tomlkit.TOMLDocument, shared: dict) -> tomlkit.TOMLDocument:
    for key in SHARED:
        doc.pop(key, None)
    if shared["backends"]:
        backends = tomlkit.table(is_super_table=True)
        for name, raw in shared["backends"].items():
            backends[name] = raw
        doc.add(tomlkit.nl())
        doc["backends"] = backends
    if shared["mappings"]:
        doc.add(tomlkit.nl())
        doc["mappings"] = tomlkit.aot()
        for raw in shared["mappings"]:
            doc["mappings"].append(tomlkit.item(raw))
    if shared["pricing"]:
        pricing = tomlkit.table()
        for model, price in shared["pricing"].items():
            pricing[model] = tomlkit.inline_table()
            pricing[model].update(price)
        doc.add(tomlkit.nl())
        doc["pricing"] = pricing
    return doc


def merge(path: Path, *, write: bool) -> Settings:
    """This replica's settings with the store's shared part. Call inside a transaction that holds
    the store's lock (`postgres.lock_store`). With `write` (a command, never the daemon), the file
    is rewritten when it takes the store's copy, and `base` remembers what was seen."""
    doc = read_document(path)
    data = doc.unwrap()
    local = _canon(_shared(data))
    row = Meta.get_or_none(Meta.key == META_KEY)
    stored = row.value if row else None
    base = _read_base()
    if stored is None or (local != stored and stored == base):
        put_meta(META_KEY, local)
        bump_generation()
        seen = local
    elif local == stored:
        seen = local
    else:
        if local not in (base, EMPTY):  # a new replica's file with no backends or mappings is no edit
            log.warning("%s: its [backends], [[mappings]] and [pricing] differ from the shared store's, which were changed "
                        "meanwhile by another replica; the store's are used", path)
        doc = _with_shared(doc, json.loads(stored))
        seen = stored
    text = tomlkit.dumps(doc)
    settings = parse_settings(path, tomlkit.parse(text).unwrap(), text)
    if write:
        if seen != local:
            write_atomic(path, text, mode=path.stat().st_mode & 0o777)
        if base != seen:
            write_atomic(_base_path(), seen, mode=0o600)
    return settings
