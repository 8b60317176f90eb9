"""What the daemon re-reads when the config or the store changes: settings, backends, mappings and
client keys. A cheap poll (the config file's mtime and size, and the store's generation counter)
notices changes, so `mlxgw map add` or a hand edit needs no restart."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from mlxgw.backends.registry import Registry
from mlxgw.dispatch.route_table import RouteTable
from mlxgw.errors import MlxgwError
from mlxgw.fsutil import LockBusy
from mlxgw.settings import MappingSettings, Settings
from mlxgw.store import client_keys
from mlxgw.store.database import generation
from mlxgw.store.mappings import load_mappings
from mlxgw.workspace import Workspace

log = logging.getLogger("mlxgw.reload")


class LiveState:
    def __init__(
        self, workspace: Workspace, registry: Registry, *, on_settings: Callable[[Settings], None] | None = None
    ) -> None:
        self.workspace = workspace
        self.registry = registry
        self.on_settings = on_settings  # told the settings after every load, e.g. the local backend's [local]
        self.routes = RouteTable([])
        self.client_keys: dict[str, str] = {}
        self.limited_keys: set[str] = set()  # names of the keys with limits: their requests ask the store
        self.key_last_used: dict[str, float] = {}  # monotonic time each client key was last recorded used
        self._seen: tuple = ()

    @property
    def mappings(self) -> list[MappingSettings]:
        return self.routes.mappings

    @property
    def settings(self) -> Settings:
        return self.workspace.settings

    def _fingerprint(self) -> tuple:
        try:
            st = os.stat(self.workspace.config_path)
            file_part = (st.st_mtime_ns, st.st_size)
        except OSError:
            file_part = (0, 0)
        return file_part, generation()

    def changed(self) -> bool:
        return self._fingerprint() != self._seen

    def load(self, *, resync: bool = False) -> None:
        """Re-read everything. A config that fails to load keeps the last good settings."""
        if resync:
            try:
                report = self.workspace.resync(wait_s=0, rewrite_config=False)
            except LockBusy:
                raise  # a command is editing the config: take its change whole, on the next poll
            except MlxgwError as exc:
                log.error("config not reloaded: %s", exc)
            else:
                for redirect in report.redirected:
                    log.warning("%s", redirect)
                for name in report.settings.plaintext_keys:
                    log.warning(
                        "backend %r has a plaintext api_key in %s: it is stored encrypted and used, but stays in the "
                        "file until `mlxgw config sync` (or any mlxgw command) moves it out",
                        name, report.settings.path,
                    )
        self.registry.refresh(self.workspace.settings)
        if self.on_settings is not None:
            self.on_settings(self.workspace.settings)
        self.routes = RouteTable(load_mappings())
        self.client_keys = client_keys.hashes()
        self.limited_keys = client_keys.limited()
        self._seen = self._fingerprint()


async def watch(state: LiveState, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            if state.changed():
                state.load(resync=True)
                log.info("configuration reloaded")
        except LockBusy:
            continue
        except Exception:
            log.exception("reload failed")
