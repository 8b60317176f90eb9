"""The [local] keys of the prompt cache and the output limit: read from the TOML, refused with the
file and line when out of range, listed in the commented template a fresh home starts with."""

from __future__ import annotations

import pytest

from mlxgw import config
from mlxgw.errors import ConfigError
from tests.foundation.helpers import cli


def test_the_keys_are_read(mlxgw_home):
    path = mlxgw_home / "config.toml"
    mlxgw_home.mkdir(parents=True, exist_ok=True)
    path.write_text("[local]\nprompt_cache_gb = 2.5\ndisk_cache_gb = 0\ndefault_max_tokens = 512\n")
    local = config.load(path).local
    assert (local.prompt_cache_gb, local.disk_cache_gb, local.default_max_tokens) == (2.5, 0.0, 512)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[local]\ndefault_max_tokens = 0\n", "local.default_max_tokens: must be at least 1"),
        ("[local]\ndisk_cache_gb = -1\n", "local.disk_cache_gb: must not be negative"),
        ('[local]\nprompt_cache_gb = "lots"\n', "local.prompt_cache_gb: must be a number"),
    ],
)
def test_bad_values_name_the_file_line_and_key(mlxgw_home, text, needle):
    path = mlxgw_home / "config.toml"
    mlxgw_home.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"{path}:2: ") and needle in str(err.value)


def test_the_template_shows_them_with_their_defaults(mlxgw_home):
    cli("map", "list")  # the first command writes the commented config
    text = (mlxgw_home / "config.toml").read_text()
    for line in ("# prompt_cache_gb = 1 ", "# disk_cache_gb = 10 ", "# default_max_tokens = 4096 "):
        assert line in text
