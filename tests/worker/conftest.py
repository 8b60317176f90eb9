"""The demo model, built once, and a worker shared by the tests that do not disturb it."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from mlxgw.backends.local import LocalBackend
from mlxgw.settings import LocalSettings, Policy
from mlxgw.worker.demo import build_demo_model


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")


@pytest.fixture(scope="session")
def demo_tokenizer(demo_dir):
    from mlx_lm.utils import load_tokenizer

    return load_tokenizer(demo_dir)


def make_backend(models, *, python: str | None = None, first_byte_timeout_s: float = 30.0, **settings) -> LocalBackend:
    local = LocalSettings(**settings, policy=Policy(first_byte_timeout_s=first_byte_timeout_s))
    return LocalBackend(models=models, settings=local, python=python)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def backend(demo_dir):
    """One worker for every test that leaves it in working order."""
    local = make_backend({"demo": str(demo_dir)})
    await asyncio.wait_for(local.start(), 60)
    yield local
    await asyncio.wait_for(local.close(), 30)


@pytest_asyncio.fixture(loop_scope="session")
async def own_backend(demo_dir):
    """A worker of the test's own, for tests that kill it or read its counters from zero."""
    backends = []

    def make(models=None, **settings) -> LocalBackend:
        local = make_backend(models or {"demo": str(demo_dir)}, **settings)
        backends.append(local)
        return local

    yield make
    for local in backends:
        await asyncio.wait_for(local.close(), 30)
