"""Writing commands run side by side lose nothing: each success is in the file and the store, each
failure left nothing, and nobody sees a traceback."""

from __future__ import annotations

import subprocess
import tomllib

from mlxgw import paths
from mlxgw.store import client_keys, credentials
from mlxgw.store.database import open_db
from mlxgw.store.mappings import load_mappings
from mlxgw.vault import Vault
from tests.daemon.helpers import MLXGW
from tests.foundation.helpers import cli


def test_twenty_parallel_writing_commands(mlxgw_home):
    commands = [["map", "add", f"m{i}", "local", "-m", f"/m/{i}"] for i in range(12)]
    commands += [["map", "add", f"m{i}", "local", "-m", f"/m/dup{i}"] for i in range(3)]  # one of each pair fails
    commands += [
        ["map", "add", "w-*", "local"],  # a local wildcard needs a model
        ["map", "add", "x1", "nosuch"],  # no such backend
        ["keys", "create", "k"],
        ["keys", "create", "k"],  # one of the two fails
        ["creds", "set", "up", "--type", "openai", "--base-url", "http://127.0.0.1:9/v1", "--no-key"],
    ]
    procs = [subprocess.Popen([*MLXGW, *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()

    mapped: dict[str, str] = {}
    keys_created = 0
    for command, (rc, out, err) in zip(commands, results, strict=True):
        assert "Traceback" not in out + err, (command, err)
        if rc != 0:
            assert rc == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, (command, rc, err)
        elif command[:2] == ["map", "add"]:
            assert command[2] not in mapped, ("both of a duplicate pair succeeded", command)
            mapped[command[2]] = command[5]
        elif command[0] == "keys":
            keys_created += 1
    assert results[-1][0] == 0, results[-1][2]  # creds set
    assert set(mapped) == {f"m{i}" for i in range(12)}
    assert keys_created == 1

    in_file = tomllib.loads(paths.config_path().read_text())
    assert {m["pattern"]: m["model"] for m in in_file.get("mappings", [])} == mapped
    assert list(in_file["backends"]) == ["up"]
    open_db(paths.db_path())  # read the store as the commands left it, without syncing it first
    assert {m.pattern: m.model for m in load_mappings()} == mapped
    assert [c.backend for c in credentials.listing()] == ["up"]
    assert [k.name for k in client_keys.listing()] == ["k"]


def test_parallel_key_rotations_keep_every_key_readable(mlxgw_home):
    for name in ("a", "b"):
        cli("creds", "set", name, "--type", "openai", "--base-url", "http://127.0.0.1:9/v1", input=f"sk-test-rotate-{name}-0001\n")
    procs = [subprocess.Popen([*MLXGW, "creds", "rotate-key"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(10)]
    try:
        results = [proc.communicate(timeout=60) + (proc.returncode,) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for out, err, rc in results:
        assert rc == 0 and "Traceback" not in err, err
        assert "re-encrypted 2 credential(s)" in out
    open_db(paths.db_path())
    vault = Vault()
    assert [credentials.get_key(n, vault) for n in ("a", "b")] == ["sk-test-rotate-a-0001", "sk-test-rotate-b-0001"]
