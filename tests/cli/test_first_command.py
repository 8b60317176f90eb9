"""The first command on a fresh home, whichever it is, writes the commented default config."""

from __future__ import annotations

import pytest

from tests.daemon.helpers import run_cli


def _is_commented_default(text: str) -> bool:
    return text.startswith("# mlxgw configuration. Edit freely") and "# [backends.openai]" in text and "# [[mappings]]" in text


@pytest.mark.parametrize("args", [("config", "path"), ("logs", "-n", "1"), ("service", "--help")])
def test_first_command_creates_the_commented_default_config(mlxgw_home, args):
    assert not mlxgw_home.exists()
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    path = mlxgw_home / "config.toml"
    assert _is_commented_default(path.read_text())
    if args == ("config", "path"):
        assert result.stdout == f"{path}\n"


def test_config_path_follows_config_option(mlxgw_home, tmp_path):
    target = tmp_path / "elsewhere" / "mine.toml"
    result = run_cli("config", "path", "--config", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{target}\n"
    assert _is_commented_default(target.read_text())


def test_an_existing_config_is_left_alone(mlxgw_home):
    mlxgw_home.mkdir()
    (mlxgw_home / "config.toml").write_text("# mine\n[server]\nport = 9999\n")
    assert run_cli("config", "path").returncode == 0
    assert (mlxgw_home / "config.toml").read_text() == "# mine\n[server]\nport = 9999\n"
