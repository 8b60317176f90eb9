"""Daily and monthly budgets per client key: over one, a mapping's over_budget local model answers
instead of the paid backend, or the request is refused with 429 and the wait until the budget renews."""

from __future__ import annotations

import datetime as dt

import pytest

from fakes.upstream import FakeOpenAI, Reply, Usage
from tests.spend.helpers import RATE_LIMITED, ask, configure, create_key, gateway, logged, spent_today

# 1000 input tokens at $50 and 100 output tokens at $100 per million: $0.06 a request.
PRICING = {"oa:gpt-4o": "{ input = 50, output = 100 }"}
USAGE = Usage(input_tokens=1000, output_tokens=100)


def _seconds_until(when: dt.datetime) -> float:
    return (when - dt.datetime.now(dt.UTC)).total_seconds()


async def test_a_key_over_its_daily_budget_is_answered_locally_where_the_mapping_says_so(demo_dir):
    local = f"local:{demo_dir}"
    async with FakeOpenAI(Reply(text="paid answer", usage=USAGE)) as up:
        configure(
            {"oa": ("openai", up.url, {})},
            [{"pattern": "gpt-*", "backend": "oa", "over_budget": local}, {"pattern": "demo", "backend": "local", "model": str(demo_dir)}],
            PRICING,
        )
        key = create_key("k1", "--daily-usd", "0.05")
        broke = create_key("k2", "--daily-usd", "0")
        async with gateway() as url:
            first = await ask(url, key, "openai")  # under its budget: the paid backend
            assert first.text == "paid answer"
            await spent_today("k1", 0.06)

            second = await ask(url, key, "openai", max_tokens=8)
            assert second.headers["x-mlxgw-backend"] == local and second.text  # the demo model answered
            third = await ask(url, key, "anthropic")
            assert third.headers["x-mlxgw-backend"] == local and third.text

            # A budget of 0: local models only. A chain that is local anyway runs as mapped.
            assert (await ask(url, broke, "openai", model="demo", max_tokens=4)).headers["x-mlxgw-backend"] == local
            assert (await ask(url, broke, "openai", max_tokens=4)).headers["x-mlxgw-backend"] == local
        assert len(up.requests) == 1

    rows = logged(5)
    assert rows[0]["backend"] == "oa" and rows[0]["cost_usd"] == pytest.approx(0.06)
    for row in rows[1:3]:
        assert (row["client_key"], row["backend"], row["status"], row["cost_usd"]) == ("k1", "local", 200, 0)
        # The request log says why: the paid attempt was skipped for the budget.
        assert row["attempts"][0] == {"backend": "oa", "model": "gpt-4o", "tries": 0, "error": "over_budget"}
    assert [a["error"] for a in rows[3]["attempts"]] == [None]


@pytest.mark.usefixtures("store_engine")
@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_a_key_over_its_budget_is_refused_until_it_renews_where_no_local_model_is_mapped(protocol):
    async with FakeOpenAI(*[Reply(text="paid", usage=USAGE) for _ in range(2)]) as up:
        configure({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}], PRICING)
        daily = create_key("k1", "--daily-usd", "0.05")
        monthly = create_key("k2", "--monthly-usd", "0.05", "--daily-usd", "10")
        async with gateway() as url:
            for key, name in ((daily, "k1"), (monthly, "k2")):
                assert (await ask(url, key, protocol)).status_code == 200
                await spent_today(name, 0.06)
        # A new daemon: the spend is in the store.
        async with gateway() as url:
            with pytest.raises(RATE_LIMITED[protocol]) as refused:
                await ask(url, daily, protocol)
            with pytest.raises(RATE_LIMITED[protocol]) as refused_monthly:
                await ask(url, monthly, protocol)
        assert len(up.requests) == 2

    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for exc, renews, period in (
        (refused.value, today + dt.timedelta(days=1), "daily"),
        (refused_monthly.value, (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1), "monthly"),
    ):
        response = exc.response
        assert response.status_code == 429
        body = response.json()
        if protocol == "openai":
            assert body["error"]["type"] == "rate_limit_error" and body["error"]["code"] == "budget_exceeded"
            message = body["error"]["message"]
        else:
            assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
            message = body["error"]["message"]
        assert f"$0.06 of its {period} budget of $0.05" in message
        assert abs(float(response.headers["retry-after"]) - _seconds_until(renews)) < 5
        if _seconds_until(renews) > 60:
            assert response.headers["x-should-retry"] == "false"  # the SDKs would retry long before
    assert [(r["client_key"], r["status"], r["error"]) for r in logged(2)] == [
        ("k1", 429, "budget_exceeded"),
        ("k2", 429, "budget_exceeded"),
    ]
    assert logged(2)[0]["attempts"] == [{"backend": "oa", "model": "gpt-4o", "tries": 0, "error": "over_budget"}]
