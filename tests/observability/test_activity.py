"""The request log over HTTP for the dashboard (`/mlxgw/requests?after=ID`, `/mlxgw/stats?since=…`),
the same rows and figures `mlxgw log` and `mlxgw stats` show; and the page itself at /ui."""

from __future__ import annotations

import json
import time

import aiohttp
import openai
import pytest

from fakes.upstream import FakeOpenAI, Reply, Usage
from tests.failover.rig import client, gateway_for
from tests.foundation.helpers import cli
from tests.gateway.helpers import eventually, get
from tests.observability.helpers import MSG


async def _rows(url: str, after: int = 0, n: int = 1) -> dict:
    async def enough():
        body = (await get(f"{url}/mlxgw/requests?after={after}")).json
        return body if len(body["requests"]) >= n else None

    return await eventually(enough, timeout=5)


@pytest.mark.usefixtures("store_engine")
async def test_requests_after_an_id_and_stats_since_a_window():
    replies = [Reply(status=503), Reply(status=503), Reply(text="ok", usage=Usage(input_tokens=11, output_tokens=7))]
    async with FakeOpenAI(*replies) as p, FakeOpenAI(Reply(text="b", usage=Usage(input_tokens=5, output_tokens=3))) as b:
        backends = {"p": ("openai", p.url, {}), "b": ("openai", b.url, {})}
        async with gateway_for(backends, [{"pattern": "m", "backend": "p", "fallbacks": ["b"]}]) as url:
            oa = client(url)
            await oa.chat.completions.create(model="m", messages=MSG)  # p fails twice, then b answers
            first = await _rows(url)
            assert [r["requested_model"] for r in first["requests"]] == ["m"]
            row = first["requests"][0]
            assert row["backend"] == "b" and row["status"] == 200 and row["output_tokens"] == 3
            assert [(a["backend"], a["tries"]) for a in row["attempts"]] == [("p", 2), ("b", 1)]
            assert first["last_id"] == row["id"]

            # Only what is newer than the last row the page has.
            assert (await get(f"{url}/mlxgw/requests?after={row['id']}")).json == {"requests": [], "last_id": row["id"]}
            await oa.chat.completions.create(model="m", messages=MSG)  # p answers
            with pytest.raises(openai.NotFoundError):
                await oa.chat.completions.create(model="nowhere", messages=MSG)
            newer = await _rows(url, after=row["id"], n=2)
            assert [(r["backend"], r["status"]) for r in newer["requests"]] == [("p", 200), (None, 404)]
            assert (await get(f"{url}/mlxgw/requests?limit=1")).json["requests"] == newer["requests"][-1:]

            stats = (await get(f"{url}/mlxgw/stats?since=1h")).json
            await oa.close()

    assert stats["since"] == "1h" and stats["bucket_s"] == 60
    assert stats["totals"] == {"total": 3, "errors": 1}
    by = {s["backend"]: s for s in stats["backends"]}
    assert by["b"]["requests"] == 1 and by["b"]["failover_rate"] == 1.0 and by["p"]["output_tokens"] == 7
    # Chart series per minute bucket, requested model and serving backend, summed by SQL.
    series = stats["series"]
    assert {(s["model"], s["backend"]) for s in series} == {("m", "b"), ("m", "p"), ("nowhere", "(none)")}
    assert sum(s["requests"] for s in series) == 3 and sum(s["errors"] for s in series) == 1
    assert sum(s["input_tokens"] for s in series) == 16 and sum(s["output_tokens"] for s in series) == 10
    now = time.time()
    assert all(s["t"] % 60 == 0 and now - 3600 - 60 <= s["t"] <= now for s in series)

    # The CLI reads the same queries from the store.
    logged = [json.loads(line) for line in cli("log", "--json").output.splitlines()]
    assert [r["id"] for r in logged] == [row["id"], *(r["id"] for r in newer["requests"])]
    assert logged[0]["attempts"] == row["attempts"]
    summary = json.loads(cli("stats", "--since", "1h", "--json").output)["backends"]
    assert summary == stats["backends"]


@pytest.mark.parametrize(
    "query, param",
    [("/mlxgw/requests?after=-1", "after"), ("/mlxgw/requests?limit=many", "limit"), ("/mlxgw/stats?since=soon", "since")],
)
async def test_bad_parameters_are_a_400_naming_them(query, param):
    async with FakeOpenAI() as up, gateway_for({"oa": ("openai", up.url, {})}, []) as url:
        r = await get(url + query)
    assert r.status == 400, r.body
    error = r.json["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and param in error["message"]


async def test_stats_buckets_grow_with_the_window():
    async with FakeOpenAI() as up, gateway_for({"oa": ("openai", up.url, {})}, []) as url:
        buckets = {since: (await get(f"{url}/mlxgw/stats?since={since}")).json["bucket_s"] for since in ("1h", "24h", "7d", "30d")}
    assert buckets == {"1h": 60, "24h": 900, "7d": 10800, "30d": 21600}


async def test_the_page_and_its_assets_come_from_the_daemon():
    async with FakeOpenAI() as up, gateway_for({"oa": ("openai", up.url, {})}, []) as url:
        page = await get(url + "/ui")
        assert page.status == 200 and page.headers["content-type"].startswith("text/html")
        # No inline code and nothing from elsewhere; no other site may frame it.
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        html = page.body.decode()
        for asset, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css"), ("favicon.svg", "image/svg+xml")):
            assert f"/ui/{asset}" in html
            r = await get(f"{url}/ui/{asset}")
            assert r.status == 200 and r.headers["content-type"].startswith(kind) and r.body
        missing = await get(url + "/ui/../../etc/passwd")
        assert missing.status == 404
        nothing = await get(url + "/ui/nothing.js")
        assert nothing.status == 404 and "/ui/nothing.js" in nothing.json["error"]["message"]
        async with aiohttp.ClientSession() as s, s.get(url + "/", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["location"] == "/ui"
