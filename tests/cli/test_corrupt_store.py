"""A store file that is not an SQLite database: one line naming it and what to do, exit status 1."""

from __future__ import annotations

import pytest

from mlxgw import paths
from tests.daemon.helpers import run_cli


@pytest.mark.parametrize(
    "args", [("serve",), ("start", "--wait", "5"), ("map", "list"), ("creds", "list"), ("log",), ("status",)]
)
def test_corrupt_store_is_one_line(mlxgw_home, args):
    assert run_cli("map", "add", "demo", "local", "-m", "/m/demo").returncode == 0
    db = paths.db_path()
    for leftover in db.parent.glob(db.name + "-*"):  # the WAL and its index, from the command above
        leftover.unlink()
    db.write_bytes(b"this is not a database\n" * 400)

    result = run_cli(*args, timeout=30)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {db} ")
    assert "Traceback" not in result.stdout + result.stderr
    assert f"mv {db} {db}.bad" in lines[0]
    assert "mlxgw creds set" in lines[0]
