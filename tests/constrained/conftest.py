"""The offline demo model, built once for the constrained-decoding tests."""

from __future__ import annotations

import pytest

from mlxgw.worker.demo import build_demo_model


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")
