"""Every test gets its own mlxgw home: no test touches the real one."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def mlxgw_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MLXGW_HOME", str(home))
    monkeypatch.delenv("MLXGW_CONFIG", raising=False)
    monkeypatch.delenv("MLXGW_SECRET_KEY", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home
