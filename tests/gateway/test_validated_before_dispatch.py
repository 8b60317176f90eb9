"""A request field of the wrong type, or a model name no header can carry, is a 400 in the caller's
protocol before any upstream is called — never a 500, and never a request the upstream sees."""

from __future__ import annotations

import pytest

from tests.gateway.helpers import ANTHROPIC_HEADERS, OPENAI_HEADERS, post

USER = [{"role": "user", "content": "hi"}]


def openai_body(**fields) -> dict:
    return {"model": "gpt-4o", "messages": USER, **fields}


def anthropic_body(**fields) -> dict:
    return {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": USER, **fields}


async def refused(gateway, protocol: str, body: dict, param: str) -> dict:
    """POST `body`, expect a 400 naming `param` in the protocol's error shape, and no upstream call."""
    if protocol == "openai":
        r = await post(gateway.url + "/v1/chat/completions", body, headers=OPENAI_HEADERS)
    else:
        r = await post(gateway.url + "/v1/messages", body, headers=ANTHROPIC_HEADERS)
    assert r.status == 400, (r.status, r.body)
    if protocol == "openai":
        error = r.json["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == param, error
    else:
        assert r.json["type"] == "error" and r.json["error"]["type"] == "invalid_request_error", r.json
        error = r.json["error"]
        assert param in error["message"], error
    assert gateway.openai_up.requests == [] and gateway.anthropic_up.requests == []
    return error


@pytest.mark.parametrize("effort", [{}, [], ["high"], 5, True])
async def test_reasoning_effort_of_the_wrong_type_is_a_400(gateway, effort):
    await refused(gateway, "openai", openai_body(reasoning_effort=effort), "reasoning_effort")


@pytest.mark.parametrize("effort", [["x"], {}, 5, 0.5])
async def test_output_config_effort_of_the_wrong_type_is_a_400(gateway, effort):
    body = anthropic_body(thinking={"type": "adaptive"}, output_config={"effort": effort})
    await refused(gateway, "anthropic", body, "output_config.effort")


@pytest.mark.parametrize("config", ["high", ["effort"], 3])
async def test_output_config_that_is_not_an_object_is_a_400(gateway, config):
    await refused(gateway, "anthropic", anthropic_body(output_config=config), "output_config")


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
@pytest.mark.parametrize("suffix", ["\r\nx-injected: 1", "\n", "\r", "\x00", "\x7f", "\x1b[31m", "\u0085"])
async def test_a_model_name_with_control_characters_is_a_400(gateway, protocol, suffix):
    body = openai_body() if protocol == "openai" else anthropic_body()
    body["model"] += suffix  # matches the gpt-* / claude-* wildcard mappings
    error = await refused(gateway, protocol, body, "model")
    assert "control character" in error["message"]


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_an_absurdly_long_model_name_is_a_400(gateway, protocol):
    body = openai_body() if protocol == "openai" else anthropic_body()
    body["model"] += "x" * 100_000
    await refused(gateway, protocol, body, "model")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": True}, "n"),
        ({"logprobs": "yes"}, "logprobs"),
        ({"top_logprobs": "3"}, "top_logprobs"),
        ({"top_logprobs": -1}, "top_logprobs"),
        ({"response_format": "json"}, "response_format"),
        ({"response_format": {"type": 5}}, "response_format.type"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema", "json_schema": "x"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": []}}},
            "response_format.json_schema.schema",
        ),
    ],
)
async def test_openai_fields_of_the_wrong_type_are_a_400(gateway, fields, param):
    await refused(gateway, "openai", openai_body(**fields), param)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"thinking": "on"}, "thinking"),
        ({"metadata": "user-1"}, "metadata"),
        ({"metadata": {"user_id": 42}}, "metadata.user_id"),
        ({"tool_choice": {"type": "auto", "disable_parallel_tool_use": "yes"}}, "tool_choice.disable_parallel_tool_use"),
        ({"output_config": {"format": "json"}}, "output_config.format"),
        ({"output_config": {"format": {"type": "json_schema", "schema": "x"}}}, "output_config.format.schema"),
        ({"output_format": {"type": "xml"}}, "output_format.type"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "no"}]}]},
            "messages.0.content.0.is_error",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": 7}]}]},
            "messages.0.content.0.signature",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": 1, "data": "AA=="}}]}]},
            "messages.0.content.0.source.media_type",
        ),
    ],
)
async def test_anthropic_fields_of_the_wrong_type_are_a_400(gateway, fields, param):
    await refused(gateway, "anthropic", anthropic_body(**fields), param)


async def test_valid_values_of_the_checked_fields_still_pass(gateway):
    """The checks refuse wrong types only: what real clients send goes through as before."""
    r = await post(
        gateway.url + "/v1/chat/completions",
        openai_body(reasoning_effort="low", n=1, logprobs=True, top_logprobs=2, response_format={"type": "text"}),
        headers=OPENAI_HEADERS,
    )
    assert r.status == 200, r.body
    body = anthropic_body(
        thinking={"type": "adaptive"},
        output_config={"effort": "a-level-added-next-year"},
        metadata={"user_id": "u1"},
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        tools=[{"name": "t", "input_schema": {"type": "object"}}],
    )
    r = await post(gateway.url + "/v1/messages", body, headers=ANTHROPIC_HEADERS)
    assert r.status == 200, r.body
    assert gateway.anthropic_up.requests[-1].json == body  # passthrough, unchanged
