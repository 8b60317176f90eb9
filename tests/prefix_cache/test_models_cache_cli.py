"""`mlxgw models cache` shows the prompt cache on disk and `--clear` empties it, with the worker
running or not; a running worker takes what was cleared for misses."""

from __future__ import annotations

import json

from mlxgw import paths
from tests.foundation.helpers import cli
from tests.prefix_cache.helpers import cache_status, prompt_tokens, run, session, worker, written


async def test_models_cache_shows_each_models_entries(demo_dir, demo_tokenizer):
    request = session("Which files does the project have?")
    async with worker(demo_dir) as local:
        await run(local, request)
        disk = await written(local)

    shown = json.loads(cli("models", "cache", "--json").output)
    assert shown["dir"] == str(paths.prompt_cache_dir())
    assert shown["max_bytes"] == 10 * 2**30  # [local] disk_cache_gb's default
    (model,) = shown["models"]
    assert (model["model"], model["path"]) == ("demo", str(demo_dir))
    assert (model["entries"], model["bytes"]) == (disk["entries"], disk["bytes"])
    assert model["longest_tokens"] > len(prompt_tokens(demo_tokenizer, request))  # the prompt and its answer

    table = cli("models", "cache").output
    assert "demo" in table and f"{model['longest_tokens']} tokens" in table


async def test_clear_empties_it_under_a_running_worker(demo_dir):
    request = session("Why does the build fail?")
    async with worker(demo_dir) as local:
        await run(local, request)
        disk = await written(local)

        cleared = cli("models", "cache", "--clear").output
        assert f"removed {disk['entries']} entries" in cleared
        assert json.loads(cli("models", "cache", "--json").output)["models"] == []
        assert not [p for p in paths.prompt_cache_dir().iterdir() if not p.name.startswith(".")]

        # Its memory gone with the model, the worker finds nothing on disk either: a miss, no error.
        assert await local.unload("demo") == "unloaded"
        assert (await run(local, request))[0].cache_read_tokens == 0
        assert (await cache_status(local))["disk_hits"] == 0

    # ...and it keeps caching after the clear.
    assert json.loads(cli("models", "cache", "--json").output)["models"][0]["entries"] >= 1
