"""Stored responses belong to the client key that made them: another key, or the same name
re-created, finds them as missing as an unknown id (404, never 403) on GET, DELETE, input_items and
`previous_response_id`. Without client keys the answers kept before owners were stay reachable."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import openai
import pytest

from fakes.upstream import FakeOpenAI
from mlxgw.store.database import MIGRATIONS
from mlxgw.store.tables import Meta, StoredResponse, db
from tests.foundation.helpers import cli
from tests.gateway.helpers import eventually, get, start_gateway
from tests.responses.helpers import CHAT, responses_gateway, streamed


def new_key(name: str) -> str:
    return json.loads(cli("keys", "create", name, "--json").output)["key"]


async def refused(call, *args, error=openai.NotFoundError, **kw) -> dict:
    with pytest.raises(error) as info:
        await call(*args, **kw)
    return info.value.body


@pytest.mark.usefixtures("store_engine")
async def test_a_stored_response_is_only_its_keys():
    alice_key, bob_key = new_key("alice"), new_key("bob")
    async with responses_gateway() as gw:
        alice, bob = gw.openai(api_key=alice_key), gw.openai(api_key=bob_key)
        first = await alice.responses.create(model=CHAT, input="My name is Ada.")
        second = (await streamed(alice, model=CHAT, input="And?", previous_response_id=first.id))[-1].response
        assert (await alice.responses.retrieve(first.id)).id == first.id
        assert len((await alice.responses.input_items.list(second.id)).data) == 3

        # Bob is told exactly what an unknown id would tell him.
        unknown = "resp_" + "0" * len(first.id.removeprefix("resp_"))
        as_unknown = {
            "retrieve": await refused(bob.responses.retrieve, unknown),
            "input_items": await refused(bob.responses.input_items.list, unknown),
            "delete": await refused(bob.responses.delete, unknown),
            "previous": await refused(
                bob.responses.create, model=CHAT, input="hi", previous_response_id=unknown, error=openai.BadRequestError
            ),
        }
        assert as_unknown["previous"]["code"] == "previous_response_not_found"
        got = {
            "retrieve": await refused(bob.responses.retrieve, first.id),
            "input_items": await refused(bob.responses.input_items.list, first.id),
            "delete": await refused(bob.responses.delete, first.id),
            "previous": await refused(
                bob.responses.create, model=CHAT, input="hi", previous_response_id=first.id, error=openai.BadRequestError
            ),
        }
        assert json.loads(json.dumps(got).replace(first.id, unknown)) == as_unknown
        # What the upstream was sent for Bob's continuation holds nothing of Alice's conversation.
        assert gw.openai_up.requests[-1].json["messages"] == [{"role": "user", "content": "hi"}]

        # Bob's DELETE removed nothing; Alice's own does.
        assert (await alice.responses.retrieve(first.id)).output_text == first.output_text
        await alice.responses.delete(second.id)
        await refused(alice.responses.retrieve, second.id)

        # A key revoked and re-created under the same name is another key.
        cli("keys", "revoke", "alice")
        again = gw.openai(api_key=new_key("alice"))

        async def new_alice_is_in() -> bool:
            return (await get(gw.url + "/v1/models", headers={"authorization": f"Bearer {alice_key}"})).status == 401 and (
                await get(gw.url + "/v1/models", headers={"authorization": f"Bearer {again.api_key}"})
            ).status == 200

        await eventually(new_alice_is_in)
        await refused(again.responses.retrieve, first.id)
        await refused(again.responses.create, model=CHAT, input="hi", previous_response_id=first.id, error=openai.BadRequestError)
    assert StoredResponse.select().where(StoredResponse.response_id == first.id).count() == 1


@pytest.mark.usefixtures("store_engine")
async def test_rows_from_before_owners_are_reachable_only_without_keys():
    async with FakeOpenAI() as up:
        cli("creds", "set", "oa", "--type", "openai", "--base-url", up.url, "--no-key")
        cli("map", "add", "gpt-*", "oa")
        async with serving() as url, openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
            old = await client.responses.create(model=CHAT, input="kept before owners")
            await eventually(lambda: StoredResponse.select().count() == 1)
        # The store as schema 8 left it: stored responses without `owner`.
        db.obj.execute_sql("ALTER TABLE storedresponse DROP COLUMN owner")
        Meta.update(value="8").where(Meta.key == "schema_version").execute()
        db.close()

        async with serving() as url, openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
            assert Meta.get(Meta.key == "schema_version").value == str(len(MIGRATIONS))
            assert StoredResponse.get(StoredResponse.response_id == old.id).owner is None
            assert (await client.responses.retrieve(old.id)).output_text == old.output_text
            assert len((await client.responses.input_items.list(old.id)).data) == 1
            later = await client.responses.create(model=CHAT, input="and now?", previous_response_id=old.id)
            assert "kept before owners" in json.dumps(up.requests[-1].json["messages"])

            key = new_key("carol")

            async def keys_are_live() -> bool:
                return (await get(url + "/v1/models")).status == 401

            await eventually(keys_are_live)
            async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as keyed:
                for response_id in (old.id, later.id):  # nobody's: kept before owners were, or without keys
                    await refused(keyed.responses.retrieve, response_id)
                    await refused(keyed.responses.delete, response_id)
    assert StoredResponse.select().count() == 2


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[str]:
    server, url = await start_gateway()
    try:
        yield url
    finally:
        await server.close()
