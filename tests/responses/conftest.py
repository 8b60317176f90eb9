"""A gateway for Responses clients, in front of real fake upstreams."""

from __future__ import annotations

import pytest

from tests.responses.helpers import responses_gateway


@pytest.fixture
async def gateway():
    async with responses_gateway() as gw:
        yield gw
