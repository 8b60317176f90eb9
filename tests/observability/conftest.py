"""The offline demo model, built once for the observability tests; Chromium for the dashboard test,
installed once per run after collection and only when that test was collected, so the install
counts against no test's timeout; a failed install is the test's set-up error, never a skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxgw.worker.demo import build_demo_model
from tests.observability import browser

DASHBOARD_TEST = Path(__file__).parent / "test_dashboard.py"
CHROMIUM = pytest.StashKey[Path | browser.SetupError]()


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if any(Path(item.path) == DASHBOARD_TEST for item in session.items):
        try:
            session.config.stash[CHROMIUM] = browser.installed()
        except browser.SetupError as e:
            session.config.stash[CHROMIUM] = e


@pytest.fixture(scope="session")
def chromium(pytestconfig: pytest.Config) -> Path:
    found = pytestconfig.stash.get(CHROMIUM, None)
    if found is None:  # collected some other way than a normal session; install now
        try:
            found = browser.installed()
        except browser.SetupError as e:
            found = e
    if isinstance(found, browser.SetupError):
        pytest.fail(f"Chromium set-up failed: {found}", pytrace=False)
    return found


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")
