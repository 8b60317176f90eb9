"""Every error kind in both protocols' shapes, through real HTTP: status, JSON shape, request ids,
retry advice. Never a 500, never a traceback."""

from __future__ import annotations

import asyncio
import re

import anthropic
import openai
import pytest

from fakes.upstream import Reply, refused_url
from tests.foundation.helpers import cli
from tests.gateway.helpers import (
    ANTHROPIC_HEADERS,
    MODEL_FOR,
    OPENAI_HEADERS,
    PAIR_IDS,
    PAIRS,
    Raw,
    get,
    post,
    start_gateway,
    upstream,
)

PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
HEADERS = {"openai": OPENAI_HEADERS, "anthropic": ANTHROPIC_HEADERS}
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
}


def assert_error(r: Raw, protocol: str, status: int) -> str:
    """The protocol's error shape with `status`; returns the message."""
    assert r.status == status, (r.status, r.body)
    assert r.headers["content-type"].startswith("application/json")
    rid = r.headers["request-id"]
    assert rid and r.headers["x-request-id"] == rid
    text = r.body.decode()
    assert "Traceback" not in text and 'File "' not in text
    body = r.json
    if protocol == "anthropic":
        assert set(body) == {"type", "error", "request_id"}
        assert body["type"] == "error"
        assert set(body["error"]) == {"type", "message"}
        assert body["error"]["type"] == ANTHROPIC_TYPES[status]
        assert body["request_id"] == rid
    else:
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert isinstance(body["error"]["type"], str) and body["error"]["type"]
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    return message


def _valid(protocol: str, model: str = "gpt-4o") -> dict:
    if protocol == "openai":
        return {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


both = pytest.mark.parametrize("protocol", ["openai", "anthropic"])


# ---- the client's request is at fault ----------------------------------------------------------


@both
@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "gpt-4o", "messages": [',
        b"not json at all",
        b"",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b"[" * 50_000,
        b'{"model": "gpt-4o", "messages": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    ],
    ids=["truncated", "text", "empty", "not-utf8", "array", "deep-unclosed", "deep-valid"],
)
async def test_malformed_body_is_400(gateway, protocol, raw):
    r = await post(gateway.url + PATHS[protocol], data=raw, headers=HEADERS[protocol])
    assert_error(r, protocol, 400)
    assert not gateway.openai_up.requests and not gateway.anthropic_up.requests


WRONG_TYPES = {
    "openai": [
        ({"messages": "hi"}, "messages"),
        ({"model": 42}, "model"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": "ten"}, "max_tokens"),
        ({"stream": "yes"}, "stream"),
        ({"tools": {"name": "x"}}, "tools"),
        ({"messages": [{"role": "user", "content": 5}]}, "content"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "role"),
    ],
    "anthropic": [
        ({"messages": "hi"}, "messages"),
        ({"model": ["claude"]}, "model"),
        ({"max_tokens": "many"}, "max_tokens"),
        ({"temperature": "cold"}, "temperature"),
        ({"stop_sequences": 7}, "stop_sequences"),
        ({"system": 12}, "system"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}, "text"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": "x"}]}
                ]
            },
            "input",
        ),
    ],
}


@both
@pytest.mark.parametrize("case", range(8))
async def test_wrong_types_are_400_naming_the_field(gateway, protocol, case):
    patch, field = WRONG_TYPES[protocol][case]
    r = await post(gateway.url + PATHS[protocol], {**_valid(protocol), **patch}, headers=HEADERS[protocol])
    message = assert_error(r, protocol, 400)
    assert field in message
    if protocol == "openai":
        assert r.json["error"]["type"] == "invalid_request_error"


@both
@pytest.mark.parametrize("missing", ["model", "messages", "max_tokens"])
async def test_missing_fields_are_400(gateway, protocol, missing):
    body = _valid(protocol)
    if missing not in body:  # OpenAI does not require max_tokens
        return
    del body[missing]
    r = await post(gateway.url + PATHS[protocol], body, headers=HEADERS[protocol])
    message = assert_error(r, protocol, 400)
    assert missing in message
    if protocol == "openai":
        assert r.json["error"]["param"] == missing


@both
async def test_unmapped_model_is_404_listing_the_mapped_models(gateway, protocol):
    cli("map", "add", "house-model", "oa")
    cli("map", "add", "house-claude", "an")
    r = None
    for _ in range(100):  # the running gateway picks the mappings up within ~0.2 s
        r = await post(
            gateway.url + PATHS[protocol], _valid(protocol, "llama-9000"), headers=HEADERS[protocol]
        )
        if "house-claude" in r.body.decode():
            break
        await asyncio.sleep(0.05)
    message = assert_error(r, protocol, 404)
    assert "llama-9000" in message
    assert "house-model" in message and "house-claude" in message
    if protocol == "openai":
        assert r.json["error"]["code"] == "model_not_found"
        assert r.json["error"]["param"] == "model"


@both
async def test_unmapped_model_hint_names_wildcard_patterns(gateway, protocol):
    r = await post(gateway.url + PATHS[protocol], _valid(protocol, "llama-9000"), headers=HEADERS[protocol])
    message = assert_error(r, protocol, 404)
    assert "gpt-*" in message and "claude-*" in message


@both
async def test_unmapped_model_raises_the_sdks_not_found_error(gateway, protocol):
    if protocol == "openai":
        with pytest.raises(openai.NotFoundError) as info:
            await gateway.openai().chat.completions.create(**_valid("openai", "llama-9000"))
    else:
        with pytest.raises(anthropic.NotFoundError) as info:
            await gateway.anthropic().messages.create(**_valid("anthropic", "llama-9000"))
    assert "llama-9000" in str(info.value)


@both
@pytest.mark.parametrize("path", ["/v1/nope", "/v1/messages/nope", "/v2/chat/completions", "/"])
async def test_unknown_endpoint_is_404(gateway, protocol, path):
    r = await post(gateway.url + path, _valid(protocol), headers=HEADERS[protocol])
    shape = "anthropic" if path.startswith("/v1/messages") else "openai"
    message = assert_error(r, shape, 404)
    assert path in message


@both
async def test_wrong_method_is_an_error_in_shape(gateway, protocol):
    r = await get(gateway.url + PATHS[protocol], headers=HEADERS[protocol])
    assert r.status == 405
    assert r.headers["request-id"]
    assert "error" in r.json


@both
async def test_body_over_the_size_limit_is_413(mlxgw_home, protocol):
    from mlxgw import paths
    from mlxgw.workspace import Workspace

    Workspace.open()
    config = paths.config_path()
    text = config.read_text()
    config.write_text(re.sub(r"(?m)^max_request_mb = .*$", "max_request_mb = 0.01", text))
    cli("creds", "set", "oa", "--type", "openai", "--base-url", "http://127.0.0.1:9/v1", input="sk-x\n")
    cli("map", "add", "gpt-*", "oa")
    server, url = await start_gateway()
    try:
        big = _valid(protocol)
        big["messages"][0]["content"] = "x" * 20_000
        r = await post(url + PATHS[protocol], big, headers=HEADERS[protocol])
        message = assert_error(r, protocol, 413)
        assert "0.01" in message or "limit" in message
        small = await post(url + PATHS[protocol], _valid(protocol, "nope-model"), headers=HEADERS[protocol])
        assert small.status == 404  # a body under the limit is read as usual
    finally:
        await server.close()


# ---- the upstream answers with an error --------------------------------------------------------


@pytest.mark.parametrize(("client", "up_kind"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_upstream_401_is_a_gateway_configuration_problem(gateway, client, up_kind, stream):
    up = upstream(gateway, up_kind)
    up.push(*[Reply(status=401)] * 3)
    r = await post(
        gateway.url + PATHS[client],
        {**_valid(client, MODEL_FOR[up_kind]), "stream": stream},
        headers=HEADERS[client],
    )
    message = assert_error(r, client, 502)
    assert "creds set" in message and ("oa" if up_kind == "openai" else "an") in message
    assert r.headers.get("x-should-retry") == "false"


@pytest.mark.parametrize(("client", "up_kind"), PAIRS, ids=PAIR_IDS)
async def test_upstream_400_is_relayed_as_400(gateway, client, up_kind):
    up = upstream(gateway, up_kind)
    up.push(Reply(status=400, error_message="messages.0.content: bad thing"))
    r = await post(gateway.url + PATHS[client], _valid(client, MODEL_FOR[up_kind]), headers=HEADERS[client])
    message = assert_error(r, client, 400)
    assert "messages.0.content: bad thing" in message
    assert len(up.requests) == 1  # a 400 is never retried


@pytest.mark.parametrize(("client", "up_kind"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_upstream_429_is_429_and_tells_the_sdk_not_to_retry(gateway, client, up_kind, stream):
    up = upstream(gateway, up_kind)
    up.push(*[Reply(status=429)] * 5)
    r = await post(
        gateway.url + PATHS[client],
        {**_valid(client, MODEL_FOR[up_kind]), "stream": stream},
        headers=HEADERS[client],
    )
    assert_error(r, client, 429)
    assert r.headers["x-should-retry"] == "false"
    if client == "openai":
        assert r.json["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(("client", "up_kind"), PAIRS, ids=PAIR_IDS)
async def test_a_long_retry_after_is_relayed_to_the_client(gateway, client, up_kind):
    up = upstream(gateway, up_kind)
    up.push(*[Reply(status=429, retry_after=30)] * 3)
    r = await post(gateway.url + PATHS[client], _valid(client, MODEL_FOR[up_kind]), headers=HEADERS[client])
    up.replies.clear()
    assert_error(r, client, 429)
    assert r.headers["retry-after"] == "30"
    assert "x-should-retry" not in r.headers  # one try only: the SDK may wait and retry itself
    assert len(up.requests) == 1  # too long to wait for within the request: not retried


@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_sdk_with_retries_does_not_multiply_a_429(gateway, client):
    up = gateway.anthropic_up
    up.push(*[Reply(status=429)] * 10)
    if client == "openai":
        with pytest.raises(openai.RateLimitError):
            await gateway.openai(max_retries=2).chat.completions.create(**_valid("openai", "claude-x"))
    else:
        with pytest.raises(anthropic.RateLimitError):
            await gateway.anthropic(max_retries=2).messages.create(**_valid("anthropic", "claude-x"))
    tries_per_client_request = len(up.requests)
    up.replies.clear()
    assert tries_per_client_request <= 2  # the gateway's own tries only; the SDK did not come back


@pytest.mark.parametrize(("client", "up_kind"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("failure", ["500", "malformed"])
async def test_a_broken_upstream_is_a_502_never_a_500(gateway, client, up_kind, stream, failure):
    up = upstream(gateway, up_kind)
    up.push(*[Reply(status=500) if failure == "500" else Reply(malformed=True, text="a b c d e f")] * 5)
    body = {**_valid(client, MODEL_FOR[up_kind]), "stream": stream}
    r = await post(gateway.url + PATHS[client], body, headers=HEADERS[client])
    up.replies.clear()
    if stream and failure == "malformed":
        # The fakes break the stream halfway, after text has begun: an in-stream error (see test_stream_errors).
        assert r.status == 200
        return
    assert_error(r, client, 502)
    assert r.headers["x-should-retry"] == "false"


@both
async def test_an_unreachable_upstream_is_a_502(gateway, protocol):
    cli("creds", "set", "dead", "--type", "openai", "--base-url", refused_url("/v1"), input="sk-dead\n")
    cli("map", "add", "dead-model", "dead")
    r = None
    for _ in range(100):
        r = await post(
            gateway.url + PATHS[protocol], _valid(protocol, "dead-model"), headers=HEADERS[protocol]
        )
        if r.status != 404:
            break
        await asyncio.sleep(0.05)
    message = assert_error(r, protocol, 502)
    assert "dead" in message


# ---- request ids on everything -----------------------------------------------------------------


@both
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_success_carries_request_ids(gateway, protocol, stream):
    for model in ("gpt-4o", "claude-x"):
        r = await post(
            gateway.url + PATHS[protocol],
            {**_valid(protocol, model), "stream": stream},
            headers=HEADERS[protocol],
        )
        assert r.status == 200
        assert r.headers["request-id"] and r.headers["x-request-id"] == r.headers["request-id"]
    for path in ("/v1/models", "/health"):
        r = await get(gateway.url + path, headers=HEADERS[protocol])
        assert r.status == 200
        assert r.headers["request-id"] == r.headers["x-request-id"]
