"""`[local]` edited in the TOML of a running gateway: the daemon and its running worker take the new
settings within the reload interval, without a restart (the worker keeps its pid)."""

from __future__ import annotations

import openai

from mlxgw import paths
from tests.gateway.helpers import eventually
from tests.local.helpers import PROMPT, local_gateway, status

GB = 1024**3


async def test_local_settings_apply_live_to_the_running_worker(demo_dir):
    async with local_gateway(demo_dir) as url:
        oa = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        await oa.chat.completions.create(model="demo", messages=PROMPT, max_tokens=1)  # starts the worker, loads demo
        before = await status(url)
        assert before["limits"] == {
            "max_loaded_models": 2,
            "idle_unload_s": 900,
            "memory_limit_bytes": None,
            "prompt_cache_bytes": 1 * GB,
            "disk_cache_bytes": 10 * GB,
        }
        assert len(before["models"]) == 1

        config = paths.config_path()
        config.write_text(
            config.read_text()
            + "\n[local]\nmax_loaded_models = 1\nidle_unload_s = 0.5\nmemory_limit_gb = 4\nfirst_byte_timeout_s = 30\n"
            + "prompt_cache_gb = 0.5\ndisk_cache_gb = 2\n"
        )

        async def applied():
            local = await status(url)
            return local if local["limits"]["max_loaded_models"] == 1 else None

        after = await eventually(applied, timeout=10)
        assert after["pid"] == before["pid"]  # the same worker: nothing restarted
        assert after["limits"] == {
            "max_loaded_models": 1,
            "idle_unload_s": 0.5,
            "memory_limit_bytes": 4 * GB,
            "prompt_cache_bytes": GB // 2,
            "disk_cache_bytes": 2 * GB,
        }
        assert after["settings"]["first_byte_timeout_s"] == 30
        # The new idle timeout is the one the worker goes by: the idle model leaves within it.
        await eventually(lambda: _no_models(url), timeout=10)
        await oa.close()


async def _no_models(url: str) -> bool:
    return (await status(url))["models"] == []
