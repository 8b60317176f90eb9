"""The TOML config: defaults, comments kept across edits, one-line errors that point at the line."""

from __future__ import annotations

import pytest

from mlxgw import config, paths
from mlxgw.errors import ConfigError
from tests.foundation.helpers import cli


def test_first_command_creates_commented_default_config(mlxgw_home):
    cli("map", "list")
    text = (mlxgw_home / "config.toml").read_text()
    assert "# mlxgw configuration" in text
    settings = config.load(paths.config_path())
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8421)


def test_edits_keep_comments_and_layout(mlxgw_home):
    path = mlxgw_home / "config.toml"
    cli("config", "path")
    config.ensure_config(path)
    path.write_text(path.read_text().replace("port = 8421", "port = 9000   # my port, keep me"))
    cli("map", "add", "demo", "local", "--model", "/models/demo")
    cli("map", "add", "gpt-*", "local", "--model", "/models/x", "--fallback", "local:/models/y", "--priority", "3")
    cli("map", "remove", "demo")
    text = path.read_text()
    assert "port = 9000   # my port, keep me" in text
    assert "# Mappings: which backend answers which model name" in text
    assert 'pattern = "gpt-*"' in text and 'pattern = "demo"' not in text
    settings = config.load(path)
    assert [m.pattern for m in settings.mappings] == ["gpt-*"]
    assert settings.mappings[0].priority == 3
    assert [str(t) for t in settings.mappings[0].fallbacks] == ["local:/models/y"]


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ('[server]\nport = "x"\n', 2, "server.port: must be an integer"),
        ("[server\nport = 1\n", 1, "invalid TOML"),
        ('[backends.foo]\ntype = "grpc"\n', 2, "backends.foo.type: unknown backend type 'grpc'"),
        ('[[mappings]]\npattern = "a"\nbackend = "nope"\n', 3, "mappings[0].backend: unknown backend 'nope'"),
        ('[server]\nport = 1\nbogus = 2\n', 3, "server.bogus: unknown key"),
    ],
)
def test_bad_config_names_file_line_and_key(mlxgw_home, text, line, needle):
    path = mlxgw_home / "config.toml"
    mlxgw_home.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert needle in str(err.value)
    result = cli("map", "list", ok=False)
    assert result.exit_code == 1
    assert needle in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_fallback_rules_are_enforced(mlxgw_home):
    for args, needle in [
        (["map", "add", "x", "nope"], "unknown backend 'nope'"),
        (["map", "add", "x", "local", "-m", "a", "-f", "local:a"], "is the mapping's own primary"),
        (["map", "add", "x", "local", "-m", "a", "-f", "local:b", "-f", "local:b"], "listed twice"),
        (["map", "add", "x", "local", "-m", "a", "-f", "ghost:b"], "unknown backend 'ghost'"),
        (["map", "add", "x", "local", "-m", "a", "-f", "local:"], "bad fallback"),
    ]:
        result = cli(*args, ok=False)
        assert result.exit_code == 1, args
        assert needle in result.output, (args, result.output)
    cli("map", "add", "x", "local", "-m", "a")
    result = cli("map", "add", "x", "local", "-m", "b", ok=False)
    assert "already exists" in result.output
    assert "b" not in [m.model for m in config.load(paths.config_path()).mappings]


def test_failed_edit_leaves_file_untouched(mlxgw_home):
    cli("map", "add", "x", "local", "-m", "a")
    before = (mlxgw_home / "config.toml").read_bytes()
    cli("map", "add", "y", "ghost", ok=False)
    assert (mlxgw_home / "config.toml").read_bytes() == before


def test_config_option_uses_another_file(tmp_path):
    other = tmp_path / "elsewhere.toml"
    cli("--config", str(other), "map", "add", "m", "local", "-m", "/x")
    assert 'pattern = "m"' in other.read_text()
    assert cli("--config", str(other), "config", "path").output.strip() == str(other)


def test_removing_every_mapping_then_adding_again(mlxgw_home):
    cli("map", "add", "a", "local", "-m", "/m/a")
    cli("map", "remove", "a")
    cli("map", "add", "b", "local", "-m", "/m/b")
    assert [m.pattern for m in config.load(mlxgw_home / "config.toml").mappings] == ["b"]


def test_annotated_example_config_is_valid(mlxgw_home):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "config" / "mlxgw.example.toml"
    settings = config.load(example)
    assert settings.backends["groq"].policy.max_tries == 3
    assert settings.backends["openai"].policy.max_tries == 2
    assert [m.pattern for m in settings.mappings] == ["demo", "gpt-*", "claude-*"]
    assert settings.mappings[2].fallback_on == ("context_length",)


def test_replace_rewrites_the_mapping_in_place_keeping_what_the_cli_does_not_set(mlxgw_home):
    cli("map", "add", "a", "local", "-m", "/m/a")
    cli("map", "add", "b", "local", "-m", "/m/b", "-f", "local:/m/c", "--priority", "2")
    path = mlxgw_home / "config.toml"
    path.write_text(path.read_text().replace('model = "/m/b"', 'model = "/m/b"  # keep this comment\nfallback_on = ["context_length"]'))
    cli("map", "add", "b", "local", "-m", "/m/new", "--replace")
    settings = config.load(path)
    assert [m.pattern for m in settings.mappings] == ["a", "b"]  # still second: config order decides ties
    b = settings.mappings[1]
    assert (b.model, b.fallbacks, b.priority, b.fallback_on) == ("/m/new", (), 0, ("context_length",))
    assert "already exists" in cli("map", "add", "b", "local", "-m", "/x", ok=False).output


def test_config_option_may_follow_the_command(tmp_path):
    other = tmp_path / "after.toml"
    cli("map", "add", "m", "local", "-m", "/x", "--config", str(other))
    assert 'pattern = "m"' in other.read_text()
    assert cli("config", "path", "-c", str(other)).output.strip() == str(other)
    assert cli("config", "path", f"--config={other}").output.strip() == str(other)
