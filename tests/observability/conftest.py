"""The offline demo model, built once for the observability tests; Chromium for the dashboard test,
installed once per run after collection (see tests/observability/browser.py)."""

from __future__ import annotations

import pytest

from mlxgw.worker.demo import build_demo_model


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")
