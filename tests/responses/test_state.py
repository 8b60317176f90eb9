"""Stored responses: `previous_response_id` continues a conversation mlxgw answered by translation
(instructions are not carried over), `GET`, `DELETE` and `input_items` work on what it kept,
`store: false` keeps nothing, and [server] responses_days prunes them in the daemon's background."""

from __future__ import annotations

import datetime as dt

import openai
import pytest

from fakes.upstream import FakeOpenAI, Reply, ToolCall
from mlxgw import paths
from mlxgw.store.database import MIGRATIONS
from mlxgw.store.tables import Meta, StoredResponse, db, utcnow
from mlxgw.workspace import Workspace
from tests.foundation.helpers import cli
from tests.gateway.helpers import eventually, get, post, start_gateway
from tests.responses.helpers import CHAT, CLAUDE, delete, streamed

WEATHER = {"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def texts(messages: list[dict]) -> list[tuple[str, str]]:
    """(role, text) of each turn an upstream was sent, in either protocol."""
    out = []
    for m in messages:
        content = m["content"]
        out.append((m["role"], content if isinstance(content, str) else "".join(p.get("text", "") for p in content)))
    return out


@pytest.mark.usefixtures("store_engine")
async def test_previous_response_id_continues_the_conversation(gateway):
    gateway.openai_up.push(Reply(text="Hello Ada."), Reply(text="Your name is Ada."))
    gateway.anthropic_up.push(Reply(text="Ada Lovelace, I presume."))
    client = gateway.openai()

    first = await client.responses.create(model=CHAT, input="My name is Ada.", instructions="Be brief.")
    events = await streamed(client, model=CHAT, input="What is my name?", previous_response_id=first.id)
    second = events[-1].response
    assert second.previous_response_id == first.id and second.output_text == "Your name is Ada."
    sent = gateway.openai_up.requests[1].json["messages"]
    assert texts(sent) == [("user", "My name is Ada."), ("assistant", "Hello Ada."), ("user", "What is my name?")]

    # A streamed answer is kept too, and the chain goes on on another backend.
    third = await client.responses.create(
        model=CLAUDE, input=[{"role": "user", "content": "And my surname?"}], previous_response_id=second.id
    )
    assert third.output_text == "Ada Lovelace, I presume."
    body = gateway.anthropic_up.requests[0].json
    assert "system" not in body  # the first turn's instructions are not carried over
    assert texts(body["messages"]) == [
        ("user", "My name is Ada."), ("assistant", "Hello Ada."), ("user", "What is my name?"),
        ("assistant", "Your name is Ada."), ("user", "And my surname?"),
    ]


async def test_a_tool_loop_on_previous_response_id(gateway):
    """The Agents SDK's loop: the next turn sends only the tool's output."""
    gateway.anthropic_up.push(Reply(tool_calls=[ToolCall("weather", {"city": "Oslo"}, id="toolu_1")]), Reply(text="Snow."))
    client = gateway.openai()
    first = await client.responses.create(model=CLAUDE, input="Weather in Oslo?", tools=[WEATHER])
    (call,) = first.output
    second = await client.responses.create(
        model=CLAUDE,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "snowing"}],
        tools=[WEATHER],
    )
    assert second.output_text == "Snow."
    messages = gateway.anthropic_up.requests[1].json["messages"]
    assert [b["type"] for m in messages for b in m["content"]] == ["text", "tool_use", "tool_result"]
    assert messages[1]["content"][0]["input"] == {"city": "Oslo"}
    assert messages[2]["content"][0]["tool_use_id"] == "toolu_1"


@pytest.mark.usefixtures("store_engine")
async def test_retrieve_list_input_items_and_delete(gateway):
    client = gateway.openai()
    first = await client.responses.create(model=CHAT, input="one")
    events = await streamed(client, model=CHAT, input=[{"role": "user", "content": "two"}], previous_response_id=first.id)
    second = events[-1].response

    assert (await client.responses.retrieve(first.id)).model_dump() == first.model_dump()
    assert (await client.responses.retrieve(second.id)).model_dump() == second.model_dump()

    # Every item the second answer saw: the first's input and output, then its own input; newest first.
    page = await client.responses.input_items.list(second.id)
    assert [i.type for i in page.data] == ["message", "message", "message"]
    assert [(i.role, i.content[0].text) for i in page.data] == [
        ("user", "two"), ("assistant", "Hello from fake-openai"), ("user", "one")
    ]
    assert page.first_id == page.data[0].id and page.last_id == page.data[-1].id and not page.has_more
    oldest = await client.responses.input_items.list(second.id, order="asc", limit=2)
    assert [i.content[0].text for i in oldest.data] == ["one", "Hello from fake-openai"] and oldest.has_more
    rest = await client.responses.input_items.list(second.id, order="asc", after=oldest.last_id)
    assert [i.content[0].text for i in rest.data] == ["two"] and not rest.has_more

    deleted = await delete(gateway.url + f"/v1/responses/{second.id}")
    assert (deleted.status, deleted.json) == (200, {"id": second.id, "object": "response", "deleted": True})
    with pytest.raises(openai.NotFoundError) as info:
        await client.responses.retrieve(second.id)
    assert info.value.body["type"] == "invalid_request_error" and second.id in info.value.body["message"]
    assert (await delete(gateway.url + f"/v1/responses/{second.id}")).status == 404
    missing = await get(gateway.url + f"/v1/responses/{second.id}/input_items")
    assert missing.status == 404 and set(missing.json["error"]) == {"message", "type", "param", "code"}
    await client.responses.delete(first.id)  # the SDK's own call
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model=CHAT, input="three", previous_response_id=first.id)
    assert info.value.body["code"] == "previous_response_not_found" and info.value.body["param"] == "previous_response_id"


async def test_store_false_keeps_nothing(gateway):
    client = gateway.openai()
    kept_not = await client.responses.create(model=CHAT, input="secret", store=False)
    events = await streamed(client, model=CHAT, input="secret", store=False)
    for response_id in (kept_not.id, events[-1].response.id):
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(response_id)
    assert kept_not.store is False


@pytest.mark.parametrize("stream", [False, True])
async def test_an_unknown_previous_response_is_refused_when_translated(gateway, stream):
    r = await post(gateway.url + "/v1/responses", {"model": CHAT, "input": "hi", "stream": stream, "previous_response_id": "resp_nope"})
    assert r.status == 400
    assert r.json["error"]["code"] == "previous_response_not_found"
    assert r.json["error"]["message"] == "Previous response with id 'resp_nope' not found."


async def test_bad_paging_is_a_400(gateway):
    first = await gateway.openai().responses.create(model=CHAT, input="one")
    for query, param in (("limit=0", "limit"), ("limit=x", "limit"), ("order=up", "order"), ("after=item_x", "after")):
        r = await get(gateway.url + f"/v1/responses/{first.id}/input_items?{query}")
        assert (r.status, r.json["error"]["param"]) == (400, param)


@pytest.mark.usefixtures("store_engine")
async def test_responses_days_prunes_in_the_background(gateway):
    client = gateway.openai()
    old = await client.responses.create(model=CHAT, input="old")
    recent = await client.responses.create(model=CHAT, input="recent")
    await eventually(lambda: StoredResponse.select().count() == 2)
    StoredResponse.update(created_at=utcnow() - dt.timedelta(days=25)).where(StoredResponse.response_id == old.id).execute()

    path = paths.config_path()
    text = path.read_text()
    assert "\nresponses_days = 30 " in text
    path.write_text(text.replace("\nresponses_days = 30 ", "\nresponses_days = 20 ", 1))

    async def gone() -> bool:
        return (await get(gateway.url + f"/v1/responses/{old.id}")).status == 404

    await eventually(gone, timeout=10)
    assert (await client.responses.retrieve(recent.id)).id == recent.id


async def test_a_store_from_before_stored_responses_is_migrated():
    async with FakeOpenAI() as up:
        cli("creds", "set", "oa", "--type", "openai", "--base-url", up.url, input="sk-oa\n")
        cli("map", "add", "gpt-*", "oa")
        # The store as the schema before this table: version 2, no storedresponse table.
        Workspace.open()
        db.obj.execute_sql("DROP TABLE storedresponse")
        Meta.replace(key="schema_version", value="2").execute()
        server, url = await start_gateway()
        try:
            async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
                first = await client.responses.create(model=CHAT, input="hi")
                assert (await client.responses.retrieve(first.id)).id == first.id
        finally:
            await server.close()
    assert Meta.get(Meta.key == "schema_version").value == str(len(MIGRATIONS))
