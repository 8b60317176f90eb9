"""Every daemon test gets a free port in its home's config and a `daemons` fixture that stops
(or kills) whatever it started."""

from __future__ import annotations

import pytest

from tests.daemon.helpers import Daemons, free_port, use_port


@pytest.fixture
def port(mlxgw_home) -> int:
    chosen = free_port()
    use_port(chosen)
    return chosen


@pytest.fixture
def daemons(port) -> Daemons:
    started = Daemons()
    try:
        yield started
    finally:
        started.teardown()
