"""Where mlxgw keeps its files: one home directory ($MLXGW_HOME or the platform's app dir)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The home directory, created on first use (mode 0700: it holds secrets)."""
    env = os.environ.get("MLXGW_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        import typer

        path = Path(typer.get_app_dir("mlxgw"))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def config_path() -> Path:
    env = os.environ.get("MLXGW_CONFIG")
    return Path(env).expanduser() if env else home() / "config.toml"


def db_path() -> Path:
    return home() / "mlxgw.db"


def edit_lock_path() -> Path:
    """Held while a process edits the config or syncs it into the store (see mlxgw.workspace)."""
    return home() / "edit.lock"


def secret_key_path() -> Path:
    return home() / "secret.key"


def log_dir() -> Path:
    path = home() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_path() -> Path:
    return home() / "mlxgw.pid"


def models_dir() -> Path:
    return home() / "models"


def prompt_cache_dir() -> Path:
    """Long prompts' KV caches, kept across restarts (see mlxgw.worker.disk_cache)."""
    return home() / "cache"
