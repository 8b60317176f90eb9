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
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield home
    # `--config` sets MLXGW_CONFIG for the command and its children; in-process CLI tests must not
    # hand it to the tests (and the daemons they start) that come after.
    os.environ.pop("MLXGW_CONFIG", None)
