"""Two `mlxgw serve` replicas on one PostgreSQL store: what one replica's CLI changes is in effect on
both within the reload interval, all requests land in one log with each replica's name, and a
client key's rate limit holds when both replicas race for its last requests."""

from __future__ import annotations

import asyncio
import json

from fakes.upstream import FakeOpenAI
from tests.replicas.helpers import keys_of, replicas, serving, status_of, until

UPSTREAM_KEY = "sk-upstream-0123456789abcdef"
PROPAGATE_S = 10.0  # the daemons poll the store every second; a busy 2-core machine gets slack


async def _backend_through(rep, up) -> None:
    """`creds set up` and `map add gpt-* up` through this replica's CLI: both replicas get them."""
    await rep.cli("creds", "set", "up", "--type", "openai", "--base-url", up.url, input=UPSTREAM_KEY + "\n")
    await rep.cli("map", "add", "gpt-*", "up")


async def test_a_mapping_and_credential_added_through_one_replica_are_served_by_the_other(tmp_path, pg_url):
    a, b = replicas(tmp_path, pg_url)
    a.write_config()
    b.write_config()
    async with FakeOpenAI(require_key=UPSTREAM_KEY) as up, serving(a, b):
        assert await status_of(b, "gpt-4o") == 404
        await _backend_through(a, up)
        took = await until(lambda: _ok(b, "gpt-4o"), PROPAGATE_S, "replica b to serve the mapping added through a")
        print(f"mapping added on a served by b after {took:.2f} s")
        await until(lambda: _ok(a, "gpt-4o"), PROPAGATE_S, "replica a to serve its own mapping")
        assert all(r.bearer == UPSTREAM_KEY for r in up.requests)  # b decrypted the key a stored
        # b's own CLI sees the shared mapping, and its config file now holds a copy of it.
        listed = json.loads((await b.cli("map", "list", "--json")).stdout)
        assert [m["pattern"] for m in listed] == ["gpt-*"]
        assert "[backends.up]" in (b.home / "config.toml").read_text()
        # A change through b goes back to a: no replica's file overrides the other's edit.
        await b.cli("map", "add", "claude-*", "up", "-m", "gpt-4o")
        await until(lambda: _ok(a, "claude-x"), PROPAGATE_S, "replica a to serve the mapping added through b")
        assert await status_of(a, "gpt-4o") == 200  # a's own earlier mapping survived b's edit


async def _ok(rep, model: str, key: str = "none") -> bool:
    return await status_of(rep, model, key) == 200


async def test_a_key_revoked_through_one_replica_is_refused_by_both_within_seconds(tmp_path, pg_url):
    a, b = replicas(tmp_path, pg_url)
    a.write_config()
    b.write_config()
    async with FakeOpenAI(require_key=UPSTREAM_KEY) as up, serving(a, b):
        await _backend_through(a, up)
        doomed = keys_of(await a.cli("keys", "create", "doomed", "--json"))
        kept = keys_of(await b.cli("keys", "create", "kept", "--json"))
        for rep in (a, b):
            await until(lambda rep=rep: _ok(rep, "gpt-4o", doomed), PROPAGATE_S, f"{rep.name} to accept the new key")
        await b.cli("keys", "revoke", "doomed")
        took = await until(
            lambda: _both(lambda rep: status_of(rep, "gpt-4o", doomed), a, b, 401), PROPAGATE_S, "both to refuse the key"
        )
        print(f"key revoked on b refused by both after {took:.2f} s")
        for rep in (a, b):
            assert await status_of(rep, "gpt-4o", kept) == 200


async def _both(check, a, b, expected: int) -> bool:
    return all(s == expected for s in await asyncio.gather(check(a), check(b)))


async def test_concurrent_requests_over_both_replicas_land_in_one_log_with_each_replicas_name(tmp_path, pg_url):
    a, b = replicas(tmp_path, pg_url)
    a.write_config()
    b.write_config()
    async with FakeOpenAI(require_key=UPSTREAM_KEY) as up, serving(a, b):
        await _backend_through(a, up)
        await until(lambda: _both(lambda rep: status_of(rep, "gpt-4o"), a, b, 200), PROPAGATE_S, "both to serve")

        before = len(up.requests)
        async with a.client() as to_a, b.client() as to_b:
            answers = await asyncio.gather(*(
                (to_a, to_b)[i % 2].chat.completions.create(
                    model="gpt-burst", messages=[{"role": "user", "content": f"request {i}"}]
                )
                for i in range(200)
            ))
        assert len(answers) == 200 and len(up.requests) - before == 200

        async def burst() -> list[dict]:  # the readiness probes above are in the log too, as gpt-4o
            rows = [json.loads(line) for line in (await a.cli("log", "--json", "-n", "1000")).stdout.splitlines()]
            return [r for r in rows if r["requested_model"] == "gpt-burst"]

        async def all_logged() -> bool:
            return len(await burst()) >= 200

        await until(all_logged, PROPAGATE_S, "all 200 rows in the shared request log")
        logged = await burst()
        assert len(logged) == 200 and all(r["status"] == 200 for r in logged)
        assert {name: sum(r["replica"] == name for r in logged) for name in ("gw0", "gw1")} == {"gw0": 100, "gw1": 100}
        # stats read the same table: both replicas' requests, per replica.
        stats = json.loads((await b.cli("stats", "--by", "model", "--by", "replica", "--json")).stdout)
        counted = {g["replica"]: g["requests"] for g in stats["groups"] if g["model"] == "gpt-burst"}
        assert counted == {"gw0": 100, "gw1": 100}
        table = (await b.cli("log", "-n", "300", COLUMNS="250")).stdout
        assert "replica" in table and "gw0" in table and "gw1" in table


async def test_a_rate_limit_is_not_overspent_when_both_replicas_race_for_its_last_requests(tmp_path, pg_url):
    a, b = replicas(tmp_path, pg_url)
    a.write_config()
    b.write_config()
    async with FakeOpenAI(require_key=UPSTREAM_KEY) as up, serving(a, b):
        await _backend_through(a, up)
        key = keys_of(await a.cli("keys", "create", "team", "--rpm", "5", "--json"))
        # A gateway that has not yet loaded any key lets every loopback caller in, limits unknown: wait
        # until both refuse a wrong key, so both have loaded "team" (the only key) with its limit.
        await until(lambda: _both(lambda rep: status_of(rep, "gpt-4o", "wrong"), a, b, 401), PROPAGATE_S, "both to know the key")
        statuses = await asyncio.gather(*(status_of((a, b)[i % 2], "gpt-4o", key) for i in range(20)))
        assert sorted(statuses) == [200] * 5 + [429] * 15
