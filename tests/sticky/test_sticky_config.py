"""sticky_s and fallback_on in the config, checked by `mlxgw config validate` and carried to the store."""

from __future__ import annotations

import pytest

from mlxgw import paths
from mlxgw.store.mappings import load_mappings
from mlxgw.workspace import Workspace
from tests.foundation.helpers import cli

MAPPING = '[[mappings]]\npattern = "m"\nbackend = "local"\nmodel = "/m/a"\n'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("sticky_s = -1", "mappings[0].sticky_s: must not be negative"),
        ('sticky_s = "long"', "mappings[0].sticky_s: must be a number"),
        ('fallback_on = ["tool_error"]', "unknown fallback_on reason 'tool_error' (known: context_length, bad_output)"),
    ],
)
def test_bad_values_are_one_line_errors(line, message):
    paths.config_path().parent.mkdir(parents=True, exist_ok=True)
    paths.config_path().write_text(MAPPING + line + "\n")
    result = cli("config", "validate", ok=False)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_sticky_s_and_bad_output_reach_the_store():
    paths.config_path().parent.mkdir(parents=True, exist_ok=True)
    paths.config_path().write_text(MAPPING + 'fallback_on = ["bad_output"]\nsticky_s = 2.5\n' + MAPPING.replace('"m"', '"n"'))
    cli("config", "validate")
    Workspace.open()
    first, second = load_mappings()
    assert (first.fallback_on, first.sticky_s) == (("bad_output",), 2.5)
    assert second.sticky_s == 300.0  # the default
