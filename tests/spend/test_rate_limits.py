"""Requests and tokens per minute per client key: 429 with Retry-After in the caller's protocol,
counted in the store (a restart keeps them), atomic under a concurrent burst."""

from __future__ import annotations

import asyncio

import pytest

from fakes.upstream import FakeOpenAI, Reply, Usage
from tests.foundation.helpers import cli
from tests.gateway.helpers import eventually, get, post
from tests.spend.helpers import MSG, RATE_LIMITED, ask, configure, create_key, gateway, key_row, logged


def _assert_429(exc, protocol: str, code: str) -> float:
    """The refusal in `protocol`'s own error shape; returns its Retry-After in seconds."""
    response = exc.response
    assert response.status_code == 429
    body = response.json()
    if protocol == "openai":
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["type"] == "rate_limit_error" and body["error"]["code"] == code
    else:
        assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
        assert body["request_id"] == response.headers["request-id"]
    assert "k1" in str(exc)
    return float(response.headers["retry-after"])


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_the_third_request_in_a_minute_of_an_rpm_2_key_gets_429_with_retry_after(protocol):
    async with FakeOpenAI() as up:
        configure({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}])
        key = create_key("k1", "--rpm", "2")
        other = create_key("k2")
        async with gateway() as url:
            for _ in range(2):
                assert (await ask(url, key, protocol)).status_code == 200
            with pytest.raises(RATE_LIMITED[protocol]) as refused:
                await ask(url, key, protocol)
            # A burst of 2, then one every 30 s: the next slot frees in at most 30 s.
            assert 25 <= _assert_429(refused.value, protocol, "rate_limit_exceeded") <= 30
            assert refused.value.response.headers.get("x-should-retry") != "false"  # worth retrying after the wait
            assert len(up.requests) == 2  # the refused request reached no upstream
            # Another key has its own counters.
            assert (await ask(url, other, protocol)).status_code == 200
            # Listing models is not limited.
            r = await get(url + "/v1/models", headers={"authorization": f"Bearer {key}"})
            assert r.status == 200
    rows = logged(10)
    assert [(r["client_key"], r["status"]) for r in rows] == [("k1", 200), ("k1", 200), ("k1", 429), ("k2", 200)]
    assert rows[2]["error"] == "rate_limit_exceeded" and rows[2]["requested_model"] == "gpt-4o"
    assert key_row("k1")["rpm_used"] == 2


@pytest.mark.usefixtures("store_engine")
async def test_counters_survive_a_gateway_restart():
    async with FakeOpenAI() as up:
        configure({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}])
        key = create_key("k1", "--rpm", "2")
        async with gateway() as url:
            for _ in range(2):
                assert (await ask(url, key, "openai")).status_code == 200
        async with gateway() as url:
            with pytest.raises(RATE_LIMITED["openai"]):
                await ask(url, key, "openai")
        assert len(up.requests) == 2


@pytest.mark.usefixtures("store_engine")
async def test_a_concurrent_burst_cannot_exceed_the_limit():
    async with FakeOpenAI(*[Reply(text="ok", delay_s=0.2) for _ in range(20)]) as up:
        configure({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}])
        key = create_key("k1", "--rpm", "3")
        async with gateway() as url:
            body = {"model": "gpt-4o", "messages": MSG}
            answers = await asyncio.gather(
                *(post(url + "/v1/chat/completions", body, headers={"authorization": f"Bearer {key}"}) for _ in range(12))
            )
    assert sorted(r.status for r in answers) == [200] * 3 + [429] * 9
    assert len(up.requests) == 3


@pytest.mark.usefixtures("store_engine")
async def test_a_key_over_its_tokens_per_minute_waits_until_they_drain():
    usage = Usage(input_tokens=600, output_tokens=500)
    async with FakeOpenAI(Reply(text="long", usage=usage), Reply(text="again")) as up:
        configure({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}])
        key = create_key("k1", "--tpm", "1000")
        async with gateway() as url:
            # Admitted under the limit, charged its 1100 tokens once it finished.
            assert (await ask(url, key, "anthropic")).status_code == 200
            await eventually(lambda: key_row("k1")["tpm_used"] >= 1000, timeout=5)
            with pytest.raises(RATE_LIMITED["anthropic"]) as refused:
                await ask(url, key, "anthropic")
            # 1100 tokens at 1000 a minute: under the limit again after 100 of them drained, ~6 s.
            assert 1 <= _assert_429(refused.value, "anthropic", "rate_limit_exceeded") <= 7
            assert "tokens per minute" in str(refused.value)


@pytest.mark.usefixtures("store_engine")
async def test_keys_update_changes_and_clears_limits_on_a_running_gateway():
    async with FakeOpenAI() as up:
        configure({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}])
        key = create_key("k1")
        async with gateway() as url:
            assert (await ask(url, key, "openai")).status_code == 200
            cli("keys", "update", "k1", "--rpm", "1")

            async def refused():
                try:
                    await ask(url, key, "openai")
                except RATE_LIMITED["openai"]:
                    return True
                return False

            await eventually(refused, timeout=5)
            assert key_row("k1")["rpm"] == 1
            assert "no limits" in cli("keys", "update", "k1", "--clear", "rpm").output

            async def admitted():
                try:
                    return (await ask(url, key, "openai")).status_code == 200
                except RATE_LIMITED["openai"]:
                    return False

            await eventually(admitted, timeout=5)
    assert key_row("k1")["rpm"] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("create", "k9", "--rpm", "0"), "--rpm must be at least 1"),
        (("create", "k9", "--daily-usd", "-1"), "--daily-usd must be 0"),
        (("update", "nobody", "--rpm", "5"), "no client key named 'nobody'"),
        (("update", "k1"), "nothing to change"),
        (("update", "k1", "--clear", "rpx"), "unknown limit 'rpx'"),
        (("update", "k1", "--rpm", "3", "--clear", "rpm"), "--rpm is both set and cleared"),
    ],
)
def test_bad_limits_are_one_line_errors(args, needle):
    create_key("k1")
    result = cli("keys", *args, ok=False)
    assert result.exit_code == 1
    assert needle in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_keys_list_shows_limits_and_use():
    create_key("k1", "--rpm", "10", "--tpm", "5000", "--daily-usd", "2.5", "--monthly-usd", "40")
    row = key_row("k1")
    assert (row["rpm"], row["tpm"], row["daily_usd"], row["monthly_usd"]) == (10, 5000, 2.5, 40.0)
    assert (row["rpm_used"], row["tpm_used"], row["today_usd"], row["month_usd"]) == (0, 0, 0.0, 0.0)
    assert "key" not in row and all("mgw-" not in str(v) for k, v in row.items() if k != "prefix")
    table = cli("keys", "list").output
    for line in ("rpm 0/10", "tpm 0/5000", "today $0.00/$2.50", "month $0.00/$40.00"):
        assert line in table
