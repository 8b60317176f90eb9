"""`backends = [...]` and `balance` in the TOML (one-line FILE:LINE errors) and `mlxgw map add --spread`."""

from __future__ import annotations

import json

import pytest

from mlxgw import config, paths
from mlxgw.errors import ConfigError
from mlxgw.store.database import MIGRATIONS
from mlxgw.store.tables import Meta, db
from tests.foundation.helpers import cli

BACKENDS = '[backends.mac1]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n' \
           '[backends.mac2]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'


@pytest.mark.parametrize(
    ("mapping", "needle"),
    [
        ('backends = ["mac1"]', "mappings[0].backends: backends needs two or more names"),
        ('backends = ["mac1", "ghost"]', "mappings[0].backends: unknown backend 'ghost'"),
        ('backends = ["mac1", "mac1"]', "mappings[0].backends: backend 'mac1' is listed twice"),
        ('backends = ["mac1", 2]', "mappings[0].backends: backends must be strings"),
        ('backends = "mac1"', "mappings[0].backends: must be"),
        ('backend = "mac1"\nbackends = ["mac1", "mac2"]', "mappings[0].backends: give `backend` or `backends`, not both"),
        ('backends = ["mac1", "mac2"]\nbalance = "random"', "mappings[0].balance: unknown balance 'random'"),
        ('backend = "mac1"\nbalance = "round_robin"', "mappings[0].balance: balance needs `backends`"),
        ('backends = ["mac1", "mac2"]\nfallbacks = ["mac2"]', "mappings[0].fallbacks: fallback 'mac2' is one of the mapping's backends"),
    ],
)
def test_bad_spread_names_file_line_and_key(mlxgw_home, mapping, needle):
    path = mlxgw_home / "config.toml"
    mlxgw_home.mkdir(parents=True, exist_ok=True)
    text = f'{BACKENDS}\n[[mappings]]\npattern = "m"\n{mapping}\n'
    path.write_text(text)
    key = needle.split(":")[0].rsplit(".", 1)[1]
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.startswith(f"{key} ="))
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)
    assert needle in str(err.value)
    result = cli("map", "list", ok=False)
    assert result.exit_code == 1 and needle in result.output and len(result.output.strip().splitlines()) == 1


def test_map_add_spread_writes_backends_and_balance(mlxgw_home):
    for name in ("mac1", "mac2", "mac3"):
        cli("creds", "set", name, "--type", "openai", "--base-url", "http://127.0.0.1:9/v1", "--no-key")
    cli("map", "add", "qwen*", "mac1", "-m", "qwen3", "--spread", "mac2,mac3", "--balance", "round_robin", "-f", "local:small")
    text = paths.config_path().read_text()
    assert 'backends = ["mac1", "mac2", "mac3"]' in text and 'balance = "round_robin"' in text
    listed = json.loads(cli("map", "list", "--json").output)
    assert listed[0]["backends"] == ["mac1", "mac2", "mac3"] and listed[0]["balance"] == "round_robin"
    chain = json.loads(cli("map", "resolve", "qwen-x", "--json").output)["chain"]
    assert chain == [
        {"backend": "mac1", "model": "qwen3"}, {"backend": "mac2", "model": "qwen3"},
        {"backend": "mac3", "model": "qwen3"}, {"backend": "local", "model": "small"},
    ]
    assert "any of the first 3 may go first (round_robin)" in cli("map", "resolve", "qwen-x").output
    table = cli("map", "list").output
    assert all(name in table for name in ("mac1", "mac2", "mac3"))

    # Replaced by a single backend: `backends` and `balance` go, `backend` comes back.
    cli("map", "add", "qwen*", "mac2", "-m", "qwen3", "--replace")
    mapping = paths.config_path().read_text().split("[[mappings]]")[-1]
    assert 'backend = "mac2"' in mapping and "backends" not in mapping and "balance" not in mapping
    assert json.loads(cli("map", "list", "--json").output)[0]["backends"] == ["mac2"]

    result = cli("map", "add", "x", "mac1", "--spread", "ghost", ok=False)
    assert result.exit_code == 1 and "unknown backend 'ghost'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_store_from_before_spread_mappings_is_migrated(mlxgw_home):
    cli("map", "list")
    # The store as schema 6 left it: mappings without `backends` and `balance`.
    for column in ("backends", "balance"):
        db.obj.execute_sql(f"ALTER TABLE mapping DROP COLUMN {column}")
    Meta.update(value="6").where(Meta.key == "schema_version").execute()
    db.close()
    for name in ("mac1", "mac2"):
        cli("creds", "set", name, "--type", "openai", "--base-url", "http://127.0.0.1:9/v1", "--no-key")
    cli("map", "add", "m", "mac1", "--spread", "mac2")
    assert Meta.get(Meta.key == "schema_version").value == str(len(MIGRATIONS))
    (mapping,) = json.loads(cli("map", "list", "--json").output)
    assert (mapping["backends"], mapping["balance"]) == (["mac1", "mac2"], "least_outstanding")
