"""The Responses API beyond a chat turn: stored responses (`previous_response_id`, `GET` and
`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`) and token counting
(`POST /v1/responses/input_tokens`).

mlxgw keeps the answers it produced by translation (unless the request said `store: false`, as
Codex does). An answer relayed from a backend that speaks Responses itself is the upstream's: its
ids are the upstream's, nothing is kept, and a `previous_response_id` mlxgw does not know goes to
that backend untouched. Only a translated answer to such an id is refused, as OpenAI refuses it.
With client keys, a kept answer is the key's that made it: to any other it is an unknown id.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from mlxgw.errors import GatewayError
from mlxgw.server.appkeys import DISPATCHER, RESPONSES
from mlxgw.server.auth import presented_key
from mlxgw.server.middleware import CLIENT_KEY, TRIED
from mlxgw.server.request_body import read_json
from mlxgw.store.responses import ResponseStore, Stored
from mlxgw.wires import responses
from mlxgw.wires.fields import invalid

MAX_PAGE = 100
DEFAULT_PAGE = 20
OWNER_CHARS = 32  # of the key's sha256 hex: no two keys share them, and the row holds less than the whole hash


class Turn:
    """One Responses request's state around its chat: the stored conversation it continues and
    what is kept of its answer. `body` is what the wire parses: the client's `input` after the
    stored input and output items of `previous_response_id`, when mlxgw stored that response."""

    def __init__(self, store: ResponseStore, owner: str, body: Any, previous: Stored | None) -> None:
        self.store = store
        self.owner = owner
        self.echo = body if isinstance(body, dict) else None  # the settings its Response repeats
        self.previous_id = self.echo.get("previous_response_id") if self.echo else None
        self.body = _continued(body, previous) if previous is not None else body
        self._unresolved = isinstance(self.previous_id, str) and previous is None
        self._kept = False

    @classmethod
    async def begin(cls, request: web.Request, body: Any) -> Turn:
        store = request.app[RESPONSES]
        previous_id = body.get("previous_response_id") if isinstance(body, dict) else None
        who = owner(request)
        previous = await store.get(previous_id, who) if isinstance(previous_id, str) and previous_id else None
        return cls(store, who, body, previous)

    def check(self, passthrough: bool) -> None:
        """Refuse to answer by translation a turn whose earlier ones mlxgw does not have."""
        if self._unresolved and not passthrough:
            raise GatewayError(
                "invalid_request",
                f"Previous response with id {self.previous_id!r} not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )

    def keep(self, response: dict) -> None:
        """Store the answer (once), unless the client said `store: false`."""
        if self._kept or self.echo is None or self.echo.get("store") is False:
            return
        self._kept = True
        self.store.keep(response, input_items(self.body.get("input")), self.owner)


def _continued(body: dict, previous: Stored) -> dict:
    new = input_items(body.get("input"))
    if body.get("input") is not None and not isinstance(body["input"], str | list):
        return body  # the wire refuses the type by name
    # Output item ids are mlxgw's own: a Responses upstream this turn may fail over to never saw them.
    earlier = [{k: v for k, v in item.items() if k != "id"} for item in previous.response.get("output", [])]
    rest = {k: v for k, v in body.items() if k != "previous_response_id"}
    return rest | {"input": previous.input_items + earlier + new}


def owner(request: web.Request) -> str:
    """Whose stored responses a request keeps and sees: "" (nobody's) while the gateway has no client
    keys, else a prefix of the presented key's hash. Not the key's name: a key revoked and re-created
    under its name is another key, and sees none of the old one's answers. A key's answers stay its
    own after the last key is revoked."""
    if request.get(CLIENT_KEY) is None:
        return ""
    return hashlib.sha256(presented_key(request).encode()).hexdigest()[:OWNER_CHARS]


def input_items(value: Any) -> list:
    """A request's `input` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    return list(value) if isinstance(value, list) else []


# ---- endpoints -------------------------------------------------------------------------------


async def retrieve(request: web.Request) -> web.Response:
    if request.query.get("stream") in ("true", "1"):
        raise invalid("streaming a stored response again is not supported; retrieve it whole", "stream")
    return web.json_response((await _stored(request)).response)


async def delete(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    if not await request.app[RESPONSES].delete(response_id, owner(request)):
        raise _not_found(response_id)
    return web.json_response({"id": response_id, "object": "response", "deleted": True})


async def list_input_items(request: web.Request) -> web.Response:
    """A page of the items the response answered, newest first unless `order=asc`, as OpenAI lists them."""
    stored = await _stored(request)
    limit = _limit(request.query.get("limit"))
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("`order` must be asc or desc", "order")
    items = [_listed(item, i, stored.response["id"]) for i, item in enumerate(stored.input_items)]
    if order == "desc":
        items.reverse()
    if after := request.query.get("after"):
        ids = [item["id"] for item in items]
        if after not in ids:
            raise invalid(f"no input item {after!r} in response {stored.response['id']!r}", "after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return web.json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )


async def input_tokens(request: web.Request) -> web.Response:
    """Counted by the first backend of the chain that can, as the Messages API's count_tokens."""
    turn = await Turn.begin(request, await read_json(request))
    creq = responses.parse_request(turn.body, request.headers)
    request[TRIED] = []
    count = await request.app[DISPATCHER].count_tokens(creq, request[TRIED])
    return web.json_response({"object": "response.input_tokens", "input_tokens": count})


async def _stored(request: web.Request) -> Stored:
    response_id = request.match_info["response_id"]
    stored = await request.app[RESPONSES].get(response_id, owner(request))
    if stored is None:
        raise _not_found(response_id)
    return stored


def _not_found(response_id: str) -> GatewayError:
    return GatewayError("not_found", f"Response with id {response_id!r} not found.", param="response_id")


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise invalid(f"`limit` must be a whole number from 1 to {MAX_PAGE}", "limit")
    return int(value)


_ID_PREFIX = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_",
              "custom_tool_call": "ctc_", "custom_tool_call_output": "ctco_"}


def _listed(item: Any, index: int, response_id: str) -> dict:
    """An input item as OpenAI lists it: typed, with an id (one derived from its place when the
    client gave none, so that `after` finds it again) and its content as parts."""
    item = dict(item) if isinstance(item, dict) else {}
    kind = item.setdefault("type", "message")
    item.setdefault("id", f"{_ID_PREFIX.get(kind, 'item_')}{response_id.removeprefix('resp_')}_{index:04d}")
    if kind == "message":
        item.setdefault("status", "completed")
        if isinstance(item.get("content"), str):
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": item["content"]} | ({"annotations": []} if part == "output_text" else {})]
    elif kind.endswith("_output"):
        item.setdefault("status", "completed")
    return item


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/responses/input_tokens", input_tokens)
    app.router.add_get("/v1/responses/{response_id}", retrieve)
    app.router.add_delete("/v1/responses/{response_id}", delete)
    app.router.add_get("/v1/responses/{response_id}/input_items", list_input_items)
