"""Non-streaming answers both ways, and each protocol's error shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import anthropic
import openai
import pytest

from mlxgw.canonical import ChatResponse, Finish, TextPart, ThinkingPart, ToolCallPart, Usage, collect
from mlxgw.errors import STATUS_BY_KIND, GatewayError, UpstreamError
from mlxgw.wires import anthropic as anth
from mlxgw.wires import openai as oai
from mlxgw.wires import thinking_signature

OPENAI_COMPLETION = {
    "id": "chatcmpl-up",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-up",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": "Calling.",
                "reasoning_content": "Need the weather.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                    },
                    {"id": "call_2", "type": "function", "function": {"name": "noop", "arguments": ""}},
                ],
            },
        }
    ],
    "usage": {
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "total_tokens": 120,
        "prompt_tokens_details": {"cached_tokens": 60},
    },
}

ANTHROPIC_MESSAGE = {
    "id": "msg_up",
    "type": "message",
    "role": "assistant",
    "model": "claude-up",
    "content": [
        {"type": "thinking", "thinking": "Hmm.", "signature": "SIG"},
        {"type": "text", "text": "The answer"},
        {"type": "tool_use", "id": "toolu_1", "name": "calc", "input": {"x": 2}},
    ],
    "stop_reason": "stop_sequence",
    "stop_sequence": "###",
    "usage": {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_input_tokens": 90,
        "cache_creation_input_tokens": 3,
    },
}
ASK = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}


def test_openai_completion_to_anthropic_client(anthropic_sdk):
    answer = collect(oai.events_from_response(OPENAI_COMPLETION))
    assert answer.usage == Usage(40, 20, 60, None)
    assert answer.finish == Finish("tool_use")
    body = anth.render_response(answer, "claude-gw", "req_1")
    assert body["id"] == "chatcmpl-up" and body["model"] == "claude-gw"
    assert body["usage"] == {
        "input_tokens": 40,
        "output_tokens": 20,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 0,
    }
    message = anthropic_sdk(json.dumps(body).encode(), content_type="application/json").messages.create(**ASK)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].thinking == "Need the weather."
    assert message.content[0].signature.startswith(thinking_signature.PREFIX)  # mlxgw's own: see test_cross_provider
    assert message.content[2].input == {"city": "Oslo"} and message.content[3].input == {}
    assert message.stop_reason == "tool_use"


def test_anthropic_message_to_openai_client(openai_sdk):
    answer = collect(anth.events_from_response(ANTHROPIC_MESSAGE))
    assert answer.content[0] == ThinkingPart("Hmm.", "SIG", origin="anthropic")
    assert answer.finish == Finish("stop_sequence", "###")
    body = oai.render_response(answer, "gpt-gw", "req_2")
    completion = openai_sdk(
        json.dumps(body).encode(), content_type="application/json"
    ).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    message = completion.choices[0].message
    assert completion.id == "msg_up" and completion.object == "chat.completion"
    assert message.content == "The answer"
    assert body["choices"][0]["message"]["reasoning_content"] == "Hmm."
    assert message.tool_calls[0].id == "toolu_1" and json.loads(message.tool_calls[0].function.arguments) == {
        "x": 2
    }
    assert completion.choices[0].finish_reason == "stop"
    assert (
        completion.usage.prompt_tokens == 103 and completion.usage.prompt_tokens_details.cached_tokens == 90
    )
    assert completion.usage.total_tokens == 108


def test_anthropic_message_round_trips_through_canonical():
    answer = collect(anth.events_from_response(ANTHROPIC_MESSAGE))
    body = anth.render_response(answer, "claude-up", "req_3")
    assert body == {**ANTHROPIC_MESSAGE, "usage": ANTHROPIC_MESSAGE["usage"]}


def test_response_ids_are_minted_from_the_request_id_when_the_source_has_none():
    answer = ChatResponse(
        None, None, [TextPart("hi"), ToolCallPart("", "f", "")], Finish("end_turn"), Usage()
    )
    anthropic_body = anth.render_response(answer, "m", "req_77")
    openai_body = oai.render_response(answer, "m", "req_77")
    assert anthropic_body["id"] == "msg_77" and openai_body["id"] == "chatcmpl-77"
    assert anthropic_body["content"][1]["id"].startswith("toolu_")
    assert openai_body["choices"][0]["message"]["tool_calls"][0]["id"].startswith("call_")
    assert openai_body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"choices": []},
        {"choices": [{"message": "x"}]},
        {"choices": [{"message": {"tool_calls": [1]}}]},
    ],
)
def test_malformed_openai_completion_is_bad_gateway(body):
    with pytest.raises(UpstreamError) as caught:
        oai.events_from_response(body)
    assert caught.value.kind == "bad_gateway" and caught.value.status == 502


@pytest.mark.parametrize("body", [[], {}, {"content": "text"}, {"content": ["x"]}])
def test_malformed_anthropic_message_is_bad_gateway(body):
    with pytest.raises(UpstreamError) as caught:
        anth.events_from_response(body)
    assert caught.value.kind == "bad_gateway"


def test_an_error_body_with_status_200_raises_its_error():
    with pytest.raises(UpstreamError) as caught:
        anth.events_from_response({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    assert caught.value.kind == "overloaded" and caught.value.retryable


# ---- error shapes ------------------------------------------------------------------------------

OPENAI_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "invalid_request_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "api_error": "api_error",
    "bad_gateway": "api_error",
    "unavailable": "overloaded_error",
    "timeout": "timeout_error",
    "overloaded": "overloaded_error",
}
ANTHROPIC_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "api_error": "api_error",
    "bad_gateway": "api_error",
    "unavailable": "overloaded_error",
    "timeout": "timeout_error",
    "overloaded": "overloaded_error",
}


@pytest.mark.parametrize("kind", list(STATUS_BY_KIND))
def test_openai_error_table(kind, openai_sdk):
    err = GatewayError(
        kind,
        f"{kind} happened",
        param="model" if kind == "not_found" else None,
        code="model_not_found" if kind == "not_found" else None,
    )
    status, body = oai.render_error(err, "req_1")
    assert status == STATUS_BY_KIND[kind]
    assert body == {
        "error": {
            "message": f"{kind} happened",
            "type": OPENAI_TYPES[kind],
            "param": err.param,
            "code": err.code,
        }
    }
    with pytest.raises(openai.APIStatusError) as caught:
        openai_sdk(json.dumps(body).encode(), status, "application/json").chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == status and caught.value.message.endswith(f"{kind} happened")


@pytest.mark.parametrize("kind", list(STATUS_BY_KIND))
def test_anthropic_error_table(kind, anthropic_sdk):
    status, body = anth.render_error(GatewayError(kind, f"{kind} happened"), "req_9")
    assert status == STATUS_BY_KIND[kind]
    assert body == {
        "type": "error",
        "error": {"type": ANTHROPIC_TYPES[kind], "message": f"{kind} happened"},
        "request_id": "req_9",
    }
    with pytest.raises(anthropic.APIStatusError) as caught:
        anthropic_sdk(json.dumps(body).encode(), status, "application/json").messages.create(**ASK)
    assert caught.value.status_code == status and caught.value.body["error"]["type"] == ANTHROPIC_TYPES[kind]


def test_anthropic_payment_required_is_a_billing_error():
    _, body = anth.render_error(UpstreamError("invalid_request", "no credit", status=402), "req_1")
    assert body["error"]["type"] == "billing_error"


@pytest.mark.parametrize("module", [oai, anth])
@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, "invalid_request", False),
        (401, "authentication", False),
        (404, "not_found", False),
        (408, "invalid_request", True),
        (409, "invalid_request", True),
        (422, "invalid_request", False),
        (429, "rate_limit", True),
        (500, "api_error", True),
        (502, "bad_gateway", True),
        (503, "unavailable", True),
        (504, "timeout", True),
        (529, "overloaded", True),
    ],
)
def test_upstream_errors_are_classified(module, status, kind, retryable):
    body = b'{"error": {"message": "nope", "type": "x"}}'
    err = module.error_from_upstream(status, body, {"X-Request-Id": "abc"})
    assert (err.kind, err.status, err.retryable, err.message) == (kind, status, retryable, "nope")
    assert err.body == body and err.headers == {"x-request-id": "abc"}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"Retry-After": "7"}, 7.0),
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after(headers, expected):
    assert oai.error_from_upstream(429, b"{}", headers).retry_after == expected


def test_retry_after_as_http_date():
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < anth.error_from_upstream(529, b"", {"retry-after": when}).retry_after <= 30


def test_upstream_may_forbid_retries():
    assert not oai.error_from_upstream(500, b"", {"x-should-retry": "false"}).retryable
    assert oai.error_from_upstream(400, b"", {"x-should-retry": "true"}).retryable


def test_context_length_is_recognised_in_both_protocols():
    openai_body = json.dumps(
        {
            "error": {
                "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
    ).encode()
    assert oai.error_from_upstream(400, openai_body, {}).code == "context_length_exceeded"
    anthropic_body = json.dumps(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "prompt is too long: 210000 tokens > 200000 maximum",
            },
        }
    ).encode()
    err = anth.error_from_upstream(400, anthropic_body, {})
    assert (err.code, err.message) == (
        "context_length_exceeded",
        "prompt is too long: 210000 tokens > 200000 maximum",
    )
    assert oai.error_from_upstream(
        429, b'{"error":{"message":"x","code":"rate_limit_exceeded"}}', {}
    ).code == ("rate_limit_exceeded")


def test_upstream_error_without_json_keeps_a_useful_message():
    assert (
        anth.error_from_upstream(502, b"<html>Bad Gateway</html>", {}).message == "<html>Bad Gateway</html>"
    )
    assert oai.error_from_upstream(503, b"", {}).message == "upstream answered HTTP 503"
