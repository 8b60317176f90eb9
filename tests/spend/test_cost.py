"""The cost of each request in the request log: its real usage at the [pricing] price, the shipped
defaults where [pricing] names no price, 0 locally, none when no price is known."""

from __future__ import annotations

import json

import pytest

from fakes.upstream import FakeAnthropic, FakeOpenAI, Reply, Usage
from mlxgw import config, paths
from mlxgw.errors import ConfigError
from tests.foundation.helpers import cli
from tests.spend.helpers import MSG, anthropic_client, configure, gateway, logged, openai_client

# OpenAI counts cache reads inside prompt_tokens and reports no cache writes; Anthropic reports
# both apart from input_tokens. The gateway keeps Anthropic's view, so the same usage prices alike.
UPSTREAMS = {
    "openai": (FakeOpenAI, "gpt-4o", Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=2000)),
    "anthropic": (
        FakeAnthropic,
        "claude-sonnet-4-6",
        Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=2000, cache_creation_tokens=400),
    ),
}
PRICING = {
    "up:gpt-4o": "{ input = 2, output = 8, cached = 0.5 }",
    "claude-sonnet-4*": "{ input = 3, output = 15, cached = 0.3, cache_write = 3.75 }",
}
COST = {
    "openai": (1000 * 2 + 500 * 8 + 2000 * 0.5) / 1e6,
    "anthropic": (1000 * 3 + 500 * 15 + 2000 * 0.3 + 400 * 3.75) / 1e6,
}


async def _chat(url: str, client: str, model: str, stream: bool) -> None:
    if client == "openai":
        async with openai_client(url, "x") as oa:
            if stream:
                options = {"include_usage": True}
                [c async for c in await oa.chat.completions.create(model=model, messages=MSG, stream=True, stream_options=options)]
            else:
                await oa.chat.completions.create(model=model, messages=MSG)
    else:
        async with anthropic_client(url, "x") as an:
            if stream:
                async with an.messages.stream(model=model, max_tokens=16, messages=MSG) as s:
                    await s.get_final_message()
            else:
                await an.messages.create(model=model, max_tokens=16, messages=MSG)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
async def test_the_cost_of_a_request_is_its_usage_at_the_configured_price(upstream, client, stream):
    fake, model, usage = UPSTREAMS[upstream]
    async with fake(Reply(text="priced", usage=usage)) as up:
        configure({"up": (upstream, up.url, {})}, [{"pattern": "*", "backend": "up"}], PRICING)
        async with gateway() as url:
            await _chat(url, client, model, stream)
    (row,) = logged(5)
    assert (row["backend"], row["model"], row["status"]) == ("up", model, 200)
    assert row["cost_usd"] == pytest.approx(COST[upstream], rel=1e-9)


async def test_shipped_prices_apply_where_pricing_names_none_and_an_entry_replaces_them():
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_tokens=1_000_000)
    replies = [Reply(text="a", usage=usage) for _ in range(4)]
    async with FakeOpenAI(*replies) as up:
        configure({"up": ("openai", up.url, {})}, [{"pattern": "*", "backend": "up"}], {"gpt-4.1": "{ input = 1, output = 1 }"})
        async with gateway() as url, openai_client(url, "x") as oa:
            for model in ("gpt-4o-mini", "gpt-4o-2024-08-06", "gpt-4.1", "house-model"):
                await oa.chat.completions.create(model=model, messages=MSG)
    costs = {row["model"]: row["cost_usd"] for row in logged(4)}
    assert costs["gpt-4o-mini"] == pytest.approx(0.15 + 0.60 + 0.075)  # gpt-4o-mini*, not gpt-4o*
    assert costs["gpt-4o-2024-08-06"] == pytest.approx(2.50 + 10 + 1.25)
    assert costs["gpt-4.1"] == pytest.approx(1 + 1 + 1)  # [pricing]; cached defaults to the input price
    assert costs["house-model"] is None  # no price known: no cost, and stats says so
    (backend,) = json.loads(cli("stats", "--json").output)["backends"]
    assert backend["unknown_cost"] == 1 and backend["cost_usd"] == pytest.approx(0.825 + 13.75 + 3)


async def test_a_request_whose_backend_reports_no_usage_has_no_cost_rather_than_zero():
    # An OpenAI stream without stream_options.include_usage, passed through as the client sent it:
    # the upstream reports no usage.
    async with FakeOpenAI(Reply(text="no usage")) as up:
        configure({"up": ("openai", up.url, {})}, [{"pattern": "*", "backend": "up"}])
        async with gateway() as url, openai_client(url, "x") as oa:
            [c async for c in await oa.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)]
    (row,) = logged(1)
    assert row["backend"] == "up" and row["output_tokens"] is None and row["cost_usd"] is None
    (backend,) = json.loads(cli("stats", "--json").output)["backends"]
    assert backend["unknown_cost"] == 1 and backend["cost_usd"] == 0


@pytest.mark.parametrize(
    ("pricing", "line", "needle"),
    [
        ('"gpt-4o" = 3', 4, "pricing.gpt-4o: must be a table of USD per million tokens"),
        ('"gpt-4o" = { input = 1 }', 4, "pricing.gpt-4o: missing 'output'"),
        ('"gpt-4o" = { input = -1, output = 1 }', 4, "input must be a number of USD per million tokens, 0 or more"),
        ('"gpt-4o" = { input = 1, output = "2" }', 4, "output must be a number"),
        ('"up:gpt-4o" = { input = 1, output = 1, cachd = 1 }', 4, "unknown price 'cachd'"),
        ('"local:demo" = { input = 1, output = 1 }', 4, "local models cost nothing"),
        ('"up:" = { input = 1, output = 1 }', 4, 'expected "MODEL" or "BACKEND:MODEL"'),
    ],
)
def test_bad_pricing_names_file_line_and_key(pricing, line, needle):
    path = paths.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[backends.up]\ntype = "openai"\n[pricing]\n{pricing}\n')
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and needle in str(err.value)
    result = cli("map", "list", ok=False)
    assert needle in result.output and len(result.output.strip().splitlines()) == 1


def test_over_budget_must_name_a_local_model():
    cli("creds", "set", "up", "--type", "openai", "--base-url", "http://127.0.0.1:9/v1", input="sk-x\n")
    for target in ("up:gpt-4o-mini", "local", "nonsense:"):
        result = cli("map", "add", "gpt-*", "up", "--over-budget", target, ok=False)
        assert 'expected "local:MODEL"' in result.output or "bad fallback" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    cli("map", "add", "gpt-*", "up", "--over-budget", "local:demo")
    assert 'over_budget = "local:demo"' in paths.config_path().read_text()
    assert '"over_budget": "local:demo"' in cli("map", "list", "--json").output
