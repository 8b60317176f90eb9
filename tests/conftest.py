"""Every test gets its own mlxgw home: no test touches the real one."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def mlxgw_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MLXGW_HOME", str(home))
    monkeypatch.delenv("MLXGW_CONFIG", raising=False)
    monkeypatch.delenv("MLXGW_SECRET_KEY", raising=False)
    monkeypatch.delenv("MLXGW_STORE_URL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield home
    # `--config` sets MLXGW_CONFIG for the command and its children; in-process CLI tests must not
    # hand it to the tests (and the daemons they start) that come after.
    os.environ.pop("MLXGW_CONFIG", None)


# --- PostgreSQL for the store's tests (tests/pg.py): one server per session, started on first use;
# a failed set-up is the test's ERROR, never a skip.
@pytest.fixture(scope="session")
def pg_server():
    from tests import pg

    try:
        server = pg.Server().start()
    except pg.SetupError as e:
        pytest.fail(f"PostgreSQL set-up failed: {e}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database on the session's server."""
    return pg_server.create_database()


@pytest.fixture(params=["sqlite", "postgres"])
def store_engine(request, monkeypatch) -> str:
    """Runs a store test on both engines: on "postgres" the store is a fresh database (MLXGW_STORE_URL)."""
    if request.param == "postgres":
        monkeypatch.setenv("MLXGW_STORE_URL", request.getfixturevalue("pg_url"))
    return request.param
