"""The offline demo model, for the budget tests whose over-budget requests a local model answers."""

from __future__ import annotations

import pytest

from mlxgw.worker.demo import build_demo_model


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")
