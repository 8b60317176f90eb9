"""The config file itself: created with the commented template when missing, read with tomlkit."""

from __future__ import annotations

import re
from pathlib import Path

import tomlkit
from tomlkit.exceptions import ParseError

from mlxgw.config.template import DEFAULT_CONFIG
from mlxgw.config.validate import parse_settings
from mlxgw.errors import ConfigError
from mlxgw.fsutil import create_atomic
from mlxgw.settings import Settings


def ensure_config(path: Path) -> None:
    """Create the commented default config if there is none yet (never over one that a concurrent
    command has just written)."""
    if path.exists():
        return
    try:
        create_atomic(path, DEFAULT_CONFIG)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror or exc}") from None


def read_document(path: Path) -> tomlkit.TOMLDocument:
    ensure_config(path)
    text = path.read_text(encoding="utf-8")
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        raise ConfigError(f"{path}:{exc.line}: invalid TOML: {_parse_reason(exc)}") from None


def _parse_reason(exc: ParseError) -> str:
    return re.sub(r"\s+at line \d+ col \d+$", "", str(exc))


def load(path: Path) -> Settings:
    """Read and validate the config at `path` (created with defaults when missing)."""
    doc = read_document(path)
    return parse_settings(path, doc.unwrap(), path.read_text(encoding="utf-8"))


