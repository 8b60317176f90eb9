"""Choosing the store: `[store] url` or MLXGW_STORE_URL (the environment wins), never a password in
the TOML, one-line errors for a store that cannot be reached, one migration however many replicas
start at once, and the rule that keeps replicas' config files from fighting over the shared part."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import psycopg

from fakes.upstream import FakeOpenAI
from mlxgw import config, paths
from mlxgw.store.database import MIGRATIONS, open_db
from tests.foundation.helpers import cli
from tests.spend.helpers import MSG, configure, gateway, logged, openai_client

MLXGW = [sys.executable, "-m", "mlxgw"]


def _config(home, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def _rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_a_password_in_the_tomls_store_url_is_refused_with_its_line_and_never_shown(mlxgw_home):
    _config(mlxgw_home, '[server]\nport = 8421\n\n[store]\nurl = "postgresql://gw:s3cr3t-pw@db.lan:5432/mlxgw"\n')
    result = cli("keys", "list", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{mlxgw_home / 'config.toml'}:5: store.url: a password does not belong in the config" in result.output
    assert "PGPASSWORD" in result.output and "s3cr3t-pw" not in result.output


def test_a_store_url_that_is_not_postgresql_is_refused(mlxgw_home):
    _config(mlxgw_home, '[store]\nurl = "mysql://gw@db.lan/mlxgw"\n')
    result = cli("keys", "list", ok=False)
    assert f"{mlxgw_home / 'config.toml'}:2: store.url: expected a PostgreSQL URL" in result.output


def test_the_tomls_store_url_puts_the_store_in_postgresql(mlxgw_home, pg_url):
    _config(mlxgw_home, f'[store]\nurl = "{pg_url}"\n')
    cli("keys", "create", "team")
    assert _rows(pg_url, "SELECT name FROM clientkey") == [("team",)]
    assert not (mlxgw_home / "mlxgw.db").exists()  # SQLite stays out of it


def test_the_environments_store_url_wins_over_the_tomls(mlxgw_home, pg_url, monkeypatch):
    _config(mlxgw_home, '[store]\nurl = "postgresql://gw@127.0.0.1:9/nowhere"\n')
    monkeypatch.setenv("MLXGW_STORE_URL", pg_url)
    cli("keys", "create", "team")
    assert _rows(pg_url, "SELECT name FROM clientkey") == [("team",)]


def test_a_store_that_cannot_be_reached_is_a_one_line_error_without_the_password(mlxgw_home, monkeypatch):
    monkeypatch.setenv("MLXGW_STORE_URL", "postgresql://gw:env-pw-123@127.0.0.1:9/mlxgw")
    result = cli("keys", "list", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot use the store at postgresql://gw:***@127.0.0.1:9/mlxgw" in lines[0]
    assert "env-pw-123" not in result.output


def test_the_password_comes_from_pgpassword_or_a_pgpass_file(mlxgw_home, pg_server, monkeypatch, tmp_path):
    url = pg_server.password_user("team", "pw-from-env-42")
    monkeypatch.setenv("MLXGW_STORE_URL", url)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))  # not this machine's ~/.pgpass
    monkeypatch.delenv("PGPASSWORD", raising=False)
    refused = cli("keys", "list", ok=False)
    assert "cannot use the store at " + url in refused.output and "password" in refused.output
    monkeypatch.setenv("PGPASSWORD", "pw-from-env-42")
    cli("keys", "create", "by-env")
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text("127.0.0.1:*:*:team:pw-from-env-42\n")
    pgpass.chmod(0o600)  # libpq ignores a password file others can read
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    cli("keys", "create", "by-file")
    assert sorted(k["name"] for k in json.loads(cli("keys", "list", "--json").output)) == ["by-env", "by-file"]


def test_replicas_starting_at_once_on_a_fresh_database_migrate_it_once(tmp_path, pg_url):
    procs = []
    for i in range(4):
        home = tmp_path / f"r{i}"
        env = {"MLXGW_HOME": str(home), "MLXGW_STORE_URL": pg_url}
        procs.append(subprocess.Popen([*MLXGW, "keys", "list"], env={**_env(), **env}, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert _rows(pg_url, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(len(MIGRATIONS)),)]


def _patterns() -> list[str]:
    return [m["pattern"] for m in json.loads(cli("map", "list", "--json").output)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLXGW_CONFIG", None)
    return env


def test_a_hand_edit_is_pushed_unless_the_store_changed_meanwhile_then_the_store_wins(tmp_path, pg_url, monkeypatch):
    monkeypatch.setenv("MLXGW_STORE_URL", pg_url)
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("MLXGW_HOME", str(a))
    cli("map", "add", "first", "local", "-m", "/m/first")
    monkeypatch.setenv("MLXGW_HOME", str(b))
    assert _patterns() == ["first"]  # b's file now holds the store's copy
    # A hand edit on b, while the store's copy is the one b last saw: it goes to the store.
    path = b / "config.toml"
    path.write_text(path.read_text().replace('pattern = "first"', 'pattern = "by-hand"'))
    cli("config", "sync")
    monkeypatch.setenv("MLXGW_HOME", str(a))
    assert _patterns() == ["by-hand"]
    # Now both change: a through its CLI, b by hand. The store's copy (a's) wins on b, with a warning.
    cli("map", "add", "second", "local", "-m", "/m/second")
    path.write_text(path.read_text().replace('pattern = "by-hand"', 'pattern = "lost"'))
    monkeypatch.setenv("MLXGW_HOME", str(b))
    assert _patterns() == ["by-hand", "second"]
    assert 'pattern = "lost"' not in path.read_text()
    # Prices are shared too: every replica counts the shared budgets at the same price.
    path.write_text(path.read_text() + '\n[pricing]\n"groq:*" = { input = 0.5, output = 1 }\n')
    cli("config", "sync")
    monkeypatch.setenv("MLXGW_HOME", str(a))
    cli("map", "list")
    assert '"groq:*" = {input = 0.5, output = 1}' in (a / "config.toml").read_text()


async def test_a_replica_without_a_name_logs_as_its_host_and_port(mlxgw_home):
    async with FakeOpenAI() as up:
        configure({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}])
        port = config.load(paths.config_path()).server.port
        async with gateway() as url, openai_client(url, "none") as client:
            await client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert [r["replica"] for r in logged(5)] == [f"{socket.gethostname()}:{port}"]


def test_both_engines_make_the_same_schema(mlxgw_home, pg_url):
    def schema(target) -> dict:
        database = open_db(target)
        return {table: sorted((c.name, c.null) for c in database.get_columns(table)) for table in database.get_tables()}

    assert schema(mlxgw_home / "fresh.db") == schema(pg_url)


def test_a_postgresql_store_without_psycopg_installed_says_what_to_install(mlxgw_home, pg_url):
    # A child in which `import psycopg` fails, as where mlxgw was installed without its postgres extra.
    code = "import sys; sys.modules['psycopg'] = None; from mlxgw.cli import main; sys.argv = ['mlxgw', 'keys', 'list']; main()"
    ran = subprocess.run([sys.executable, "-c", code], env={**_env(), "MLXGW_STORE_URL": pg_url},
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert "a PostgreSQL store needs psycopg: pip install 'mlxgw[postgres]'" in ran.stderr
