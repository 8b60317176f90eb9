"""Sync TOML -> SQLite: idempotent, transactional; credentials encrypted; key rotation."""

from __future__ import annotations

import os
import shutil
import stat

import pytest
from cryptography.fernet import Fernet

from mlxgw import paths
from mlxgw.errors import CredentialError
from mlxgw.store import credentials
from mlxgw.store.database import generation
from mlxgw.store.mappings import load_mappings
from mlxgw.store.sync import sync
from mlxgw.workspace import Workspace
from tests.foundation.helpers import cli

KEY = "sk-live-0123456789abcdefghijXYZ"


def _all_store_bytes(home) -> bytes:
    return b"".join(p.read_bytes() for p in home.iterdir() if p.name.startswith("mlxgw.db"))


@pytest.mark.usefixtures("store_engine")
def test_sync_is_idempotent(mlxgw_home):
    cli("map", "add", "a", "local", "-m", "/m/a")
    ws = Workspace.open()
    gen = generation()
    assert ws.resync().changed is False
    assert ws.resync().changed is False
    assert generation() == gen
    assert [m.pattern for m in load_mappings()] == ["a"]


@pytest.mark.usefixtures("store_engine")
def test_mappings_missing_from_toml_are_removed(mlxgw_home):
    cli("map", "add", "a", "local", "-m", "/m/a")
    cli("map", "add", "b", "local", "-m", "/m/b")
    path = mlxgw_home / "config.toml"
    text = path.read_text()
    path.write_text(text[: text.index('[[mappings]]\npattern = "a"')] + text[text.index('[[mappings]]\npattern = "b"'):])
    cli("config", "sync")
    assert [m.pattern for m in load_mappings()] == ["b"]


@pytest.mark.usefixtures("store_engine")
def test_failing_sync_changes_nothing(mlxgw_home, monkeypatch):
    cli("map", "add", "a", "local", "-m", "/m/a")
    path = mlxgw_home / "config.toml"
    # A new mapping plus a plaintext key that cannot be encrypted (the secret key is broken):
    # the sync fails half-way, and the mapping it had already replaced must come back.
    path.write_text(
        path.read_text()
        + '\n[backends.openai]\ntype = "openai"\napi_key = "' + KEY + '"\n'
        + '\n[[mappings]]\npattern = "b"\nbackend = "openai"\n'
    )
    monkeypatch.setenv("MLXGW_SECRET_KEY", "not-a-fernet-key")
    result = cli("config", "sync", ok=False)
    assert result.exit_code == 1 and "not a valid Fernet key" in result.output
    monkeypatch.delenv("MLXGW_SECRET_KEY")
    from mlxgw.store.database import open_db, store_target

    open_db(store_target(None, paths.db_path()))
    assert [m.pattern for m in load_mappings()] == ["a"]
    assert credentials.listing() == []
    assert KEY in path.read_text()  # not stripped from the TOML either: nothing was stored


def test_secret_key_file_is_0600_from_creation(mlxgw_home):
    old = os.umask(0)
    try:
        cli("creds", "set", "openai", input=KEY + "\n")
    finally:
        os.umask(old)
    for name in ("secret.key", "mlxgw.db"):
        mode = stat.S_IMODE((mlxgw_home / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))


def test_creds_set_stores_key_encrypted_only(mlxgw_home):
    cli("creds", "set", "openai", input=KEY + "\n")
    assert KEY.encode() not in _all_store_bytes(mlxgw_home)
    assert KEY not in (mlxgw_home / "config.toml").read_text()
    ws = Workspace.open()
    assert credentials.get_key("openai", ws.vault) == KEY
    listed = cli("creds", "list", "--json").output
    assert KEY not in listed and "sk-…wXYZ"[:3] in listed and KEY[-4:] in listed


@pytest.mark.usefixtures("store_engine")
def test_plaintext_key_in_toml_is_moved_into_store(mlxgw_home):
    cli("config", "path")
    path = mlxgw_home / "config.toml"
    cli("map", "list")
    path.write_text(path.read_text() + f'\n[backends.groq]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\napi_key = "{KEY}"\n')
    result = cli("config", "sync")
    assert "moved the api_key of backend 'groq'" in result.output
    assert KEY not in path.read_text()
    assert "[backends.groq]" in path.read_text()
    assert KEY.encode() not in _all_store_bytes(mlxgw_home)
    assert credentials.get_key("groq", Workspace.open().vault) == KEY


def test_wrong_secret_key_gives_clear_error(mlxgw_home, tmp_path):
    cli("creds", "set", "openai", input=KEY + "\n")
    (mlxgw_home / "secret.key").write_bytes(Fernet.generate_key())  # as if the store moved machines
    ws = Workspace.open()
    with pytest.raises(CredentialError, match="cannot decrypt credential openai: wrong or missing secret key"):
        credentials.get_key("openai", ws.vault)
    result = cli("creds", "rotate-key", ok=False)
    assert "cannot decrypt credential openai" in result.output and "Traceback" not in result.output


@pytest.mark.usefixtures("store_engine")
def test_rotate_key_keeps_credentials_readable(mlxgw_home):
    cli("creds", "set", "openai", input=KEY + "\n")
    cli("creds", "set", "anthropic", input="fake-second-key-000000000\n")
    old_key = (mlxgw_home / "secret.key").read_bytes()
    cli("creds", "rotate-key")
    assert (mlxgw_home / "secret.key").read_bytes() != old_key
    assert not (mlxgw_home / "secret.key.new").exists()
    assert stat.S_IMODE((mlxgw_home / "secret.key").stat().st_mode) == 0o600
    ws = Workspace.open()
    assert credentials.get_key("openai", ws.vault) == KEY
    assert credentials.get_key("anthropic", ws.vault) == "fake-second-key-000000000"
    # The old key can no longer read them.
    shutil.copy(mlxgw_home / "secret.key", mlxgw_home / "new.key")
    (mlxgw_home / "secret.key").write_bytes(old_key)
    with pytest.raises(CredentialError):
        credentials.get_key("openai", Workspace.open().vault)


def test_interrupted_rotation_leaves_everything_readable(mlxgw_home):
    cli("creds", "set", "openai", input=KEY + "\n")
    ws = Workspace.open()
    ws.vault.begin_rotation()  # the new key is written, the store not yet re-encrypted: a crash here
    assert credentials.get_key("openai", Workspace.open().vault) == KEY
    cli("creds", "rotate-key")
    assert credentials.get_key("openai", Workspace.open().vault) == KEY


@pytest.mark.usefixtures("store_engine")
def test_creds_remove_and_sync_rejects_nothing_else(mlxgw_home):
    cli("creds", "set", "openai", input=KEY + "\n")
    cli("map", "add", "gpt-*", "openai")
    result = cli("creds", "remove", "openai", ok=False)
    assert "used by mapping 'gpt-*'" in result.output
    cli("map", "remove", "gpt-*")
    cli("creds", "remove", "openai")
    assert credentials.listing() == []
    assert "\n[backends.openai]" not in (mlxgw_home / "config.toml").read_text()


@pytest.mark.usefixtures("store_engine")
def test_sync_function_reports_change(mlxgw_home):
    ws = Workspace.open()
    assert sync(ws.settings, ws.vault).changed is False
