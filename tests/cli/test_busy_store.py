"""A store another process is writing: a command waits for it, and past the busy timeout gives up
with one line, never a traceback."""

from __future__ import annotations

import sqlite3
import threading
import tomllib

from mlxgw import paths
from tests.daemon.helpers import run_cli


def _hold_write_lock() -> sqlite3.Connection:
    conn = sqlite3.connect(paths.db_path(), isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_a_briefly_busy_store_is_waited_for(mlxgw_home):
    assert run_cli("map", "list").returncode == 0
    conn = _hold_write_lock()
    timer = threading.Timer(1.0, conn.rollback)
    timer.start()
    try:
        result = run_cli("map", "add", "m", "local", "-m", "/m/m")
    finally:
        timer.join()
        conn.close()
    assert result.returncode == 0, result.stderr
    assert "mapped m" in result.stdout


def test_a_store_kept_busy_is_one_line(mlxgw_home):
    assert run_cli("map", "list").returncode == 0
    conn = _hold_write_lock()
    try:
        result = run_cli("map", "add", "m", "local", "-m", "/m/m")
    finally:
        conn.rollback()
        conn.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {paths.db_path()} is busy (database is locked): another process kept it locked for over 5 s; try again"
    ]
    assert "mappings" not in tomllib.loads(paths.config_path().read_text())  # the failed command left nothing
