"""The offline demo model and its tokenizer, built once for the cache-usage tests."""

from __future__ import annotations

import pytest

from mlxgw.worker.demo import build_demo_model


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")


@pytest.fixture(scope="session")
def demo_tokenizer(demo_dir):
    from mlx_lm.utils import load_tokenizer

    return load_tokenizer(demo_dir)
