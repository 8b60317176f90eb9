"""A gateway for Responses clients, in front of real fake upstreams; the offline demo model."""

from __future__ import annotations

import pytest

from mlxgw.worker.demo import build_demo_model
from tests.responses.helpers import responses_gateway


@pytest.fixture
async def gateway():
    async with responses_gateway() as gw:
        yield gw


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")
