"""Opening everything a command or the daemon works with: the config, the store and the vault."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlxgw import config, paths
from mlxgw.config import Settings
from mlxgw.store.database import open_db
from mlxgw.store.sync import SyncReport, sync
from mlxgw.vault import Vault


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
        config.ensure_config(path)
        settings = config.load(path)
        open_db(paths.db_path())
        vault = Vault()
        report = sync(settings, vault)
        return cls(path, report.settings, vault, report)

    def resync(self) -> SyncReport:
        self.last_sync = sync(config.load(self.config_path), self.vault)
        self.settings = self.last_sync.settings
        return self.last_sync
