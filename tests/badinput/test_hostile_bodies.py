"""Malformed and hostile bodies thrown at both APIs of a running `mlxgw serve` (real HTTP): never a
5xx, every error in the protocol's own shape, and the gateway keeps serving."""

from __future__ import annotations

import http.client
import json
import tempfile
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import procs
from tests.reliability.sse import error_shape_ok, judge

PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
SETTINGS = settings(max_examples=250, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def gateway():
    """One gateway for the module, its upstreams fake ones in their own process."""
    with tempfile.TemporaryDirectory(prefix="mlxgw-badinput-") as tmp, procs.upstream(Path(tmp)) as up:
        config = {
            "backends": {"oa": {"type": "openai", "base_url": up["openai"]},
                         "an": {"type": "anthropic", "base_url": up["anthropic"]}},
            # The wildcard ones route any name: a hostile model name reaches the dispatcher.
            "mappings": [{"pattern": "m", "backend": "oa"}, {"pattern": "c", "backend": "an"},
                         {"pattern": "m-*", "backend": "oa"}, {"pattern": "c-*", "backend": "an"}],
        }
        with procs.gateway(Path(tmp), **config) as gw:
            yield urlsplit(gw.url).netloc
            assert gw.proc.popen.poll() is None, "the gateway died"


def send(netloc: str, protocol: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(netloc, timeout=30)
    try:
        headers = {"content-type": content_type, "anthropic-version": "2023-06-01"}
        conn.request("POST", PATHS[protocol], body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def check(netloc: str, protocol: str, body: bytes) -> None:
    status, raw = send(netloc, protocol, body)
    assert status < 500, (status, raw[:300], body[:300])
    if status >= 400:
        parsed = json.loads(raw)
        assert error_shape_ok(protocol, parsed), raw[:300]
    elif raw.startswith((b"data:", b"event:")):
        assert judge(protocol, status, raw) in ("ok", "error_event"), raw[-300:]
    else:
        json.loads(raw)


def valid(protocol: str, model: str | None = None) -> dict:
    body = {"model": model or ("m" if protocol == "openai" else "c"), "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}]}
    return body


protocols = st.sampled_from(["openai", "anthropic"])
scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False) | st.text(max_size=50)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=20)
hostile = (
    json_values
    | st.sampled_from([None, True, False, -1, 0, -(2**63), 2**64, 1e308, -1e308, 1.5, "", "x" * 100_000, [], {}, [[[]]],
                       {"type": "not_a_block"}, [{"type": "mystery", "data": 1}], [{"role": "robot", "content": 3}],
                       [{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}],
                       [{"role": "user"}], [{"content": "hi"}], [{"role": "user", "content": None}],
                       [{"role": "user", "content": [{"type": "text"}]}], [{"role": "tool", "content": "x"}],
                       [{"role": "assistant", "content": [{"type": "tool_use", "id": 1, "name": None, "input": "x"}]}]])
)
FIELDS = ["model", "messages", "max_tokens", "stream", "temperature", "top_p", "stop", "stop_sequences", "tools",
          "tool_choice", "system", "stream_options", "n", "thinking", "metadata", "response_format", "seed",
          "reasoning_effort", "output_config", "output_format", "logprobs", "top_logprobs", "max_completion_tokens",
          "parallel_tool_calls", "user", "top_k", "min_p"]
# Option objects whose members the gateway reads, with those members' names.
OPTIONS = {"thinking": ["type", "budget_tokens"], "output_config": ["effort", "format"],
           "output_format": ["type", "schema"], "response_format": ["type", "json_schema"],
           "stream_options": ["include_usage"], "metadata": ["user_id"],
           "tool_choice": ["type", "name", "disable_parallel_tool_use", "function"]}


@SETTINGS
@given(protocol=protocols, data=st.binary(max_size=3000))
def test_raw_bytes(gateway, protocol, data):
    check(gateway, protocol, data)


@SETTINGS
@given(protocol=protocols, cut=st.integers(min_value=1, max_value=80), junk=st.binary(min_size=1, max_size=8))
def test_truncated_json_and_invalid_utf8(gateway, protocol, cut, junk):
    raw = json.dumps(valid(protocol)).encode()
    check(gateway, protocol, raw[:cut])
    check(gateway, protocol, raw[: cut % len(raw)] + b"\xff\xfe" + junk + raw[cut % len(raw):])


@SETTINGS
@given(protocol=protocols, body=json_values)
def test_any_json_value(gateway, protocol, body):
    check(gateway, protocol, json.dumps(body).encode())


@SETTINGS
@given(protocol=protocols, changes=st.dictionaries(st.sampled_from(FIELDS), hostile, min_size=1, max_size=4),
       drop=st.lists(st.sampled_from(FIELDS), max_size=3), stream=st.booleans())
def test_wrong_types_everywhere(gateway, protocol, changes, drop, stream):
    body = {**valid(protocol), "stream": stream}
    for field in drop:
        body.pop(field, None)
    body.update(changes)
    check(gateway, protocol, json.dumps(body).encode())


@SETTINGS
@given(protocol=protocols, option=st.sampled_from(sorted(OPTIONS)), data=st.data(), stream=st.booleans(),
       adaptive=st.booleans())
def test_wrong_types_inside_option_objects(gateway, protocol, option, data, stream, adaptive):
    members = data.draw(st.dictionaries(st.sampled_from(OPTIONS[option]), hostile | json_values, min_size=1, max_size=3))
    body = {**valid(protocol), "stream": stream, option: members}
    if adaptive and option != "thinking":
        body["thinking"] = {"type": "adaptive"}  # so that output_config.effort is read
    check(gateway, protocol, json.dumps(body).encode())


@SETTINGS
@given(protocol=protocols, name=st.text(max_size=30), stream=st.booleans())
def test_any_model_name_through_a_wildcard_mapping(gateway, protocol, name, stream):
    model = ("m-" if protocol == "openai" else "c-") + name
    status, raw = send(gateway, protocol, json.dumps({**valid(protocol, model), "stream": stream}).encode())
    assert status < 500, (status, raw[:300], model)
    if any(unicodedata.category(ch) == "Cc" for ch in model):
        assert status == 400 and error_shape_ok(protocol, json.loads(raw)), (status, raw[:300])


@SETTINGS
@given(protocol=protocols, max_tokens=st.one_of(st.integers(min_value=-(2**80), max_value=2**80), st.floats(), st.booleans(),
                                                st.none(), st.text(max_size=5)))
def test_absurd_max_tokens(gateway, protocol, max_tokens):
    body = {**valid(protocol), "max_tokens": max_tokens}
    raw = json.dumps(body, allow_nan=True).encode()
    check(gateway, protocol, raw)


@SETTINGS
@given(protocol=protocols, block=st.dictionaries(st.sampled_from(["type", "text", "source", "id", "input", "content", "name"]),
                                                  json_values, max_size=4))
def test_content_blocks(gateway, protocol, block):
    body = {**valid(protocol), "messages": [{"role": "user", "content": [block]}]}
    check(gateway, protocol, json.dumps(body).encode())


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_deep_nesting_and_huge_strings(gateway, protocol):
    depth = 10_000
    check(gateway, protocol, b"[" * depth + b"]" * depth)
    check(gateway, protocol, b'{"model": "m", "messages": ' + b"[" * depth + b"]" * depth + b"}")
    check(gateway, protocol, b'{"model": "m", "messages": [{"role": "user", "content": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}]}")
    huge = {**valid(protocol), "messages": [{"role": "user", "content": "x" * 5_000_000}]}
    check(gateway, protocol, json.dumps(huge).encode())
    huge_model = {**valid(protocol), "model": "m" * 1_000_000}
    check(gateway, protocol, json.dumps(huge_model).encode())


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_body_over_the_limit_is_413(gateway, protocol):
    status, raw = send(gateway, protocol, b'{"model": "m", "pad": "' + b"x" * (33 * 1024 * 1024) + b'"}')
    assert status == 413
    assert error_shape_ok(protocol, json.loads(raw))


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_still_serving_afterwards(gateway, protocol):
    status, raw = send(gateway, protocol, json.dumps(valid(protocol)).encode())
    assert status == 200, raw[:300]
    status, raw = send(gateway, protocol, json.dumps({**valid(protocol), "stream": True}).encode())
    assert judge(protocol, status, raw) == "ok"
