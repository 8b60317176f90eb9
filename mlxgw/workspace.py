"""Opening everything a command or the daemon works with: the config, the store and the vault.

Every read-modify-write of the config, and every sync of it into the store, happens under one lock
per home: commands run side by side (and the daemon reloading) never lose each other's edits, and a
sync never writes back a config read before another command changed it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlxgw import config, paths
from mlxgw.config import ConfigEditor
from mlxgw.fsutil import exclusive_lock
from mlxgw.settings import Settings
from mlxgw.store.database import open_db, shared, store_target
from mlxgw.store.postgres import lock_store
from mlxgw.store.shared_config import merge
from mlxgw.store.sync import SyncReport, sync
from mlxgw.store.tables import db
from mlxgw.vault import Vault

LOCK_WAIT_S = 30.0
_held = threading.local()  # how deep this thread is inside home_lock(): it is re-entrant


@contextmanager
def home_lock(wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the home's edit lock for the block (re-entrant within a thread). Raises LockBusy when
    another process keeps it for more than `wait_s`."""
    if getattr(_held, "depth", 0):
        _held.depth += 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    busy = f"another mlxgw process is changing the config ({paths.edit_lock_path()} held for {wait_s:g} s); try again"
    with exclusive_lock(paths.edit_lock_path(), wait_s=wait_s, busy=busy):
        _held.depth = 1
        try:
            yield
        finally:
            _held.depth = 0


@contextmanager
def store_turn(*, wait: bool = True) -> Iterator[None]:
    """With a shared store, one transaction holding the store's lock: replicas' config syncs and
    edits take turns, and one that fails changes nothing. (SQLite: the home's lock is enough.)"""
    if not shared():
        yield
        return
    with db.obj.atomic():
        lock_store(db.obj, wait=wait)
        yield


def _load_and_sync(path: Path, vault: Vault, *, rewrite_config: bool = True, wait: bool = True) -> SyncReport:
    """Read the config (inside the lock, never before it) and make the store match it. With a
    shared store, the config's [backends], [[mappings]] and [pricing] are merged with the store's first
    (mlxgw.store.shared_config); a daemon (`rewrite_config=False`) never writes its file."""
    config.ensure_config(path)
    if not shared():
        return sync(config.load(path), vault, rewrite_config=rewrite_config)
    with store_turn(wait=wait):
        return sync(merge(path, write=rewrite_config), vault, rewrite_config=rewrite_config)


@dataclass
class Workspace:
    config_path: Path
    settings: Settings
    vault: Vault
    last_sync: SyncReport

    @classmethod
    def open(cls, config_path: Path | None = None) -> Workspace:
        """Load the config (creating the default one), open the store and sync the one into the other."""
        path = config_path or paths.config_path()
        vault = Vault()
        with home_lock():
            config.ensure_config(path)
            open_db(store_target(config.load(path).store.url, paths.db_path()))
            report = _load_and_sync(path, vault)
        return cls(path, report.settings, vault, report)

    def resync(self, *, wait_s: float = LOCK_WAIT_S, rewrite_config: bool = True) -> SyncReport:
        """Re-read the config and sync it. The daemon passes wait_s=0 (rather than block its event
        loop behind a command's edit, it retries on its next poll) and rewrite_config=False: moving
        a plaintext key out of the user's file is a command's job, never the background's."""
        with home_lock(wait_s):
            return self._took(
                _load_and_sync(self.config_path, self.vault, rewrite_config=rewrite_config, wait=wait_s > 0)
            )

    @contextmanager
    def edit(self) -> Iterator[ConfigEditor]:
        """The config to change, read under the home's lock; when the block ends without an error it
        is validated, written and synced into the store before the lock is released."""
        with home_lock(), store_turn():
            if shared():  # edit the store's latest copy of the shared part
                merge(self.config_path, write=True)
            editor = ConfigEditor(self.config_path)
            yield editor
            saved = editor.save()
            self._took(_load_and_sync(self.config_path, self.vault) if shared() else sync(saved, self.vault))

    def _took(self, report: SyncReport) -> SyncReport:
        self.last_sync, self.settings = report, report.settings
        return report
