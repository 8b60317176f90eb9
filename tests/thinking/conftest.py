"""Scripted thinking models, built once per session from the offline demo model."""

from __future__ import annotations

import pytest

from mlxgw.worker.demo import build_demo_model
from tests.thinking.models import endless_thinker, thinking_model


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def demo_dir(models):
    return build_demo_model(models / "demo")


@pytest.fixture(scope="session")
def thinker(demo_dir, models):
    return thinking_model(demo_dir, models / "thinker")


@pytest.fixture(scope="session")
def endless(demo_dir, models):
    return endless_thinker(demo_dir, models / "endless")
