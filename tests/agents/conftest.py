"""The agent CLIs are installed once per run, after collection and only when an agent test was
collected, so the install (minutes on a fresh clone) counts against no test's timeout; a failed
install is every agent test's set-up error, never a skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agents import tools

HERE = Path(__file__).parent
CLIS = pytest.StashKey[dict[str, Path] | tools.SetupError]()


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if any(Path(item.path).is_relative_to(HERE) for item in session.items):
        try:
            session.config.stash[CLIS] = tools.installed()
        except tools.SetupError as e:
            session.config.stash[CLIS] = e


@pytest.fixture(scope="session")
def agent_clis(pytestconfig: pytest.Config) -> dict[str, Path]:
    """Command name -> path of each pinned agent CLI."""
    found = pytestconfig.stash.get(CLIS, None)
    if found is None:  # collected some other way than a normal session; install now
        try:
            found = tools.installed()
        except tools.SetupError as e:
            found = e
    if isinstance(found, tools.SetupError):
        pytest.fail(f"agent CLI set-up failed: {found}", pytrace=False)
    return found
