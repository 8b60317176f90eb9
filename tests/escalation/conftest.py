"""Copies of the demo model scripted to answer with a tool call, good or bad, built once."""

from __future__ import annotations

import pytest

from mlxgw.worker.demo import build_demo_model
from tests.escalation.answers import ANSWERS
from tests.scripted_model import scripted_model


@pytest.fixture(scope="session")
def scripted(tmp_path_factory) -> dict[str, str]:
    """Each answer's model directory, by the answer's name."""
    models = tmp_path_factory.mktemp("models")
    demo = build_demo_model(models / "demo")
    return {name: str(scripted_model(demo, models / name, text, words=words)) for name, (text, words) in ANSWERS.items()}
