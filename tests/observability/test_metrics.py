"""`GET /metrics` through the real daemon: a mix of requests (the local demo model, a cloud fake, a
fallback, an error) moves the counters and histograms by exactly those requests."""

from __future__ import annotations

import anthropic
import openai
import pytest

from fakes.upstream import FakeAnthropic, FakeOpenAI, Reply, Usage
from tests.failover.rig import gateway_for
from tests.observability.helpers import MSG, moved, scrape, total, value

COUNTED = ("mlxgw_requests_total", "mlxgw_request_duration_seconds_count", "mlxgw_time_to_first_token_seconds_count",
           "mlxgw_tokens_total", "mlxgw_attempts_total", "mlxgw_retries_total", "mlxgw_fallbacks_total")


def _counted(delta: dict) -> dict:
    return {(name, labels): v for (name, labels), v in delta.items() if name in COUNTED}


def _key(name: str, **labels: str):
    return (name, frozenset(labels.items()))


async def test_a_mix_of_requests_moves_exactly_its_counters(demo_dir):
    cloud = FakeAnthropic(Reply(text="from the cloud", usage=Usage(input_tokens=11, output_tokens=7)))
    # `bad` fails both tries of its attempt; the request falls back to `spare`.
    bad = FakeOpenAI(Reply(status=503), Reply(status=503))
    spare = FakeOpenAI(Reply(text="from the spare", usage=Usage(input_tokens=5, output_tokens=3)))
    async with cloud, bad, spare:
        backends = {"cloud": ("anthropic", cloud.url, {}), "bad": ("openai", bad.url, {}), "spare": ("openai", spare.url, {})}
        mappings = [
            {"pattern": "demo", "backend": "local", "model": str(demo_dir)},
            {"pattern": "claude-*", "backend": "cloud"},
            {"pattern": "flaky", "backend": "bad", "fallbacks": ["spare:steady"]},
        ]
        async with gateway_for(backends, mappings) as url:
            before = await scrape(url)
            # Nothing local has run: the worker is reported absent, not as an error.
            assert value(before, "mlxgw_local_worker_running") == 0
            assert value(before, "mlxgw_local_models_loaded") == 0
            assert value(before, "mlxgw_breaker_state", backend="bad", model="", state="closed") == 1

            oa = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
            an = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)
            local = await oa.chat.completions.create(
                model="demo", messages=MSG, max_tokens=6, stream=True, stream_options={"include_usage": True}
            )
            local_usage = [c.usage async for c in local if c.usage][-1]
            async with an.messages.stream(model="claude-x", max_tokens=50, messages=MSG) as s:
                await s.get_final_message()
            await oa.chat.completions.create(model="flaky", messages=MSG)
            with pytest.raises(openai.NotFoundError):
                await oa.chat.completions.create(model="unmapped", messages=MSG)
            await oa.close()
            await an.close()
            after = await scrape(url)

    demo = str(demo_dir)
    expected = {
        _key("mlxgw_requests_total", protocol="openai", backend="local", model=demo, status="2xx", error=""): 1,
        _key("mlxgw_requests_total", protocol="anthropic", backend="cloud", model="claude-x", status="2xx", error=""): 1,
        _key("mlxgw_requests_total", protocol="openai", backend="spare", model="steady", status="2xx", error=""): 1,
        _key("mlxgw_requests_total", protocol="openai", backend="", model="", status="4xx", error="model_not_found"): 1,
        _key("mlxgw_request_duration_seconds_count", backend="local", model=demo): 1,
        _key("mlxgw_request_duration_seconds_count", backend="cloud", model="claude-x"): 1,
        _key("mlxgw_request_duration_seconds_count", backend="spare", model="steady"): 1,
        _key("mlxgw_request_duration_seconds_count", backend="", model=""): 1,
        # Only streamed answers have a first token apart from their end.
        _key("mlxgw_time_to_first_token_seconds_count", backend="local", model=demo): 1,
        _key("mlxgw_time_to_first_token_seconds_count", backend="cloud", model="claude-x"): 1,
        _key("mlxgw_tokens_total", backend="local", model=demo, type="input"): local_usage.prompt_tokens
        - ((local_usage.prompt_tokens_details and local_usage.prompt_tokens_details.cached_tokens) or 0),
        _key("mlxgw_tokens_total", backend="local", model=demo, type="output"): 6,
        _key("mlxgw_tokens_total", backend="cloud", model="claude-x", type="input"): 11,
        _key("mlxgw_tokens_total", backend="cloud", model="claude-x", type="output"): 7,
        _key("mlxgw_tokens_total", backend="spare", model="steady", type="input"): 5,
        _key("mlxgw_tokens_total", backend="spare", model="steady", type="output"): 3,
        _key("mlxgw_attempts_total", backend="local", model=demo, outcome="ok"): 1,
        _key("mlxgw_attempts_total", backend="cloud", model="claude-x", outcome="ok"): 1,
        _key("mlxgw_attempts_total", backend="bad", model="flaky", outcome="unavailable"): 1,
        _key("mlxgw_attempts_total", backend="spare", model="steady", outcome="ok"): 1,
        _key("mlxgw_retries_total", backend="bad"): 1,
        _key("mlxgw_fallbacks_total", backend="bad"): 1,
    }
    assert _counted(moved(before, after)) == expected
    # Every request lands in the +Inf bucket of its histogram, and its seconds in the sum.
    assert total(after, "mlxgw_request_duration_seconds_bucket", le="+Inf") == 4
    assert total(after, "mlxgw_request_duration_seconds_sum") > 0

    # The worker now runs the demo model: its figures are read at the scrape.
    assert value(after, "mlxgw_local_worker_running") == 1
    assert value(after, "mlxgw_local_models_loaded") == 1
    assert value(after, "mlxgw_local_worker_restarts_total") == 0
    assert value(after, "mlxgw_local_model_memory_bytes", model=demo) > 0
    assert value(after, "mlxgw_local_prefix_cache_lookups_total") == 1
    assert 0 <= value(after, "mlxgw_local_prefix_cache_hit_ratio") <= 1
    assert value(after, "mlxgw_local_queue_depth") == 0
    assert value(after, "mlxgw_local_generated_tokens_total") >= 6
    assert value(after, "mlxgw_breaker_state", backend="local", model=demo, state="closed") == 1
    assert value(after, "mlxgw_breaker_state", backend="bad", model="", state="open") == 0
