"""Editing the config as the CLI does: tomlkit keeps the user's comments and layout; an edit is
validated before it is written, atomically."""

from __future__ import annotations

from pathlib import Path

import tomlkit

from mlxgw.config.document import read_document
from mlxgw.config.validate import parse_settings
from mlxgw.errors import ConfigError
from mlxgw.fsutil import write_atomic
from mlxgw.kinds import KINDS
from mlxgw.settings import MappingSettings, Settings


class ConfigEditor:
    """Edits the TOML document in place (comments kept), validates, then writes atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc = read_document(path)

    def save(self) -> Settings:
        text = tomlkit.dumps(self.doc)
        try:
            settings = parse_settings(self.path, tomlkit.parse(text).unwrap(), text)
        except ConfigError as exc:
            # The edit never reached the file, so a line number in it would mislead.
            raise ConfigError(exc.reason) from None
        write_atomic(self.path, text, mode=self.path.stat().st_mode & 0o777 if self.path.exists() else 0o644)
        return settings

    def _mappings(self) -> tomlkit.items.AoT:
        if "mappings" not in self.doc:
            self.doc.add(tomlkit.nl())
            self.doc.append("mappings", tomlkit.aot())
        return self.doc["mappings"]

    def add_mapping(self, mapping: MappingSettings, *, replace_existing: bool = False) -> None:
        """Append a mapping; with `replace_existing`, rewrite the one with the same pattern in place
        (its position, comments, `enabled`, `fallback_on` and `sticky_s` stay)."""
        aot = self._mappings()
        table = next((t for t in aot if t.get("pattern") == mapping.pattern), None)
        if table is not None and not replace_existing:
            raise ConfigError(f"a mapping for {mapping.pattern!r} already exists (remove it first, or --replace)")
        fresh = table is None
        if fresh:
            table = tomlkit.table()
            table["pattern"] = mapping.pattern
        if mapping.backends:  # spread: `backends` replaces `backend`
            table.pop("backend", None)
        else:
            table["backend"] = mapping.backend
        for key, value in (
            ("backends", list(mapping.backends)),
            ("balance", mapping.balance if mapping.backends else None),
            ("model", mapping.model),
            ("fallbacks", [str(t) for t in mapping.fallbacks]),
            ("priority", mapping.priority),
            ("max_output_tokens", mapping.max_output_tokens),
            ("over_budget", str(mapping.over_budget) if mapping.over_budget else None),
        ):
            if value:
                table[key] = value
            elif key in table:
                del table[key]
        if fresh:
            if not mapping.enabled:
                table["enabled"] = False
            table.add(tomlkit.nl())
            aot.append(table)

    def remove_mapping(self, pattern: str) -> None:
        aot = self.doc.get("mappings")
        for i, existing in enumerate(aot or []):
            if existing.get("pattern") == pattern:
                if len(aot) == 1:
                    del self.doc["mappings"]  # tomlkit cannot append to an emptied array of tables
                else:
                    del aot[i]
                return
        raise ConfigError(f"no mapping with pattern {pattern!r}")

    def set_backend(self, name: str, btype: str, base_url: str | None, *, keyless: bool = False) -> None:
        """Add or update [backends.NAME]; `keyless` also drops any api_key / api_key_env it has, so
        that no key reaches that server by any route."""
        if "backends" not in self.doc:
            self.doc.append("backends", tomlkit.table(is_super_table=True))
        backends = self.doc["backends"]
        if name not in backends:
            backends.append(name, tomlkit.table())
        table = backends[name]
        table["type"] = btype
        if base_url:
            table["base_url"] = base_url
        elif "base_url" not in table:
            table["base_url"] = KINDS[btype].default_base_url
        if keyless:
            for key in ("api_key", "api_key_env"):
                table.pop(key, None)

    def has_backend(self, name: str) -> bool:
        return name in (self.doc.get("backends") or {})

    def remove_backend(self, name: str) -> None:
        backends = self.doc.get("backends")
        if not backends or name not in backends:
            raise ConfigError(f"no backend named {name!r} in {self.path}")
        for m in self.doc.get("mappings", []):
            targets = [m.get("backend")] + [str(f).partition(":")[0] for f in m.get("fallbacks", [])]
            if name in targets:
                raise ConfigError(f"backend {name!r} is used by mapping {m.get('pattern')!r}; remove that first")
        del backends[name]

    def strip_api_keys(self) -> list[str]:
        """Remove every `api_key` from [backends.*]; returns the backends it was removed from."""
        removed = []
        for name, table in (self.doc.get("backends") or {}).items():
            if isinstance(table, dict) and "api_key" in table:
                del table["api_key"]
                removed.append(name)
        return removed
