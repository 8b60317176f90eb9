"""The live set of backends, rebuilt from the settings whenever the config changes."""

from __future__ import annotations

import os
from collections.abc import Callable

import aiohttp

from mlxgw.backends.base import Backend, LocalModels
from mlxgw.backends.http import Upstream
from mlxgw.errors import CredentialError
from mlxgw.kinds import KINDS
from mlxgw.settings import LOCAL, BackendSettings, Settings

# A backend's stored key by its name (None: none stored); raises CredentialError when it cannot be read.
KeyLookup = Callable[[str], str | None]


class Registry:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        stored_key: KeyLookup,
        *,
        local: LocalModels | None = None,
        extra: dict[str, Backend] | None = None,
    ) -> None:
        self.session = session
        self.stored_key = stored_key
        self.local = local
        self.extra = dict(extra or {})  # backends injected by the app factory's caller (tests, benchmarks)
        self._cloud: dict[str, tuple[BackendSettings, Backend]] = {}
        self._keys: dict[str, str | None] = {}
        self.key_errors: dict[str, str] = {}

    def get(self, name: str) -> Backend | None:
        if name in self.extra:
            return self.extra[name]
        if name == LOCAL:
            return self.local
        found = self._cloud.get(name)
        return found[1] if found else None

    def names(self) -> list[str]:
        names = set(self._cloud) | set(self.extra)
        if self.local is not None:
            names.add(LOCAL)
        return sorted(names)

    def refresh(self, settings: Settings) -> None:
        """Build backends for new or changed settings, drop removed ones, re-read every key."""
        self._keys.clear()
        self.key_errors.clear()
        for name, backend_settings in settings.backends.items():
            self._keys[name] = self._read_key(backend_settings)
            current = self._cloud.get(name)
            if current and current[0] == backend_settings:
                continue
            upstream = Upstream(backend_settings, self.session, key=lambda name=name: self._keys.get(name))
            adapter = KINDS[backend_settings.type].adapter_class()
            backend = adapter(upstream, anthropic_version=settings.server.anthropic_version)
            self._cloud[name] = (backend_settings, backend)
        for name in set(self._cloud) - set(settings.backends):
            del self._cloud[name]

    def _read_key(self, backend: BackendSettings) -> str | None:
        if backend.api_key_env and os.environ.get(backend.api_key_env):
            return os.environ[backend.api_key_env]
        try:
            return self.stored_key(backend.name)
        except CredentialError as exc:
            self.key_errors[backend.name] = str(exc)
            return None

    async def close(self) -> None:
        for backend in [self.local, *self.extra.values()]:
            if backend is not None:
                await backend.close()
