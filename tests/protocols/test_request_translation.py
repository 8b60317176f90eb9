"""Client requests parsed into the canonical form and rebuilt for an upstream of either protocol."""

from __future__ import annotations

import pytest

from mlxgw.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from mlxgw.errors import GatewayError
from mlxgw.wires import anthropic as anth
from mlxgw.wires import openai as oai

PNG = "iVBORw0KGgo="


def no_nones(value, path="body"):
    """Neither builder may emit a None value anywhere."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert item is not None, f"{path}.{key} is None"
            no_nones(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            no_nones(item, f"{path}[{i}]")


def to_anthropic(body: dict) -> dict:
    built = anth.build_request(oai.parse_request(body, {}), "claude-up")
    no_nones(built)
    return built


def to_openai(body: dict) -> dict:
    built = oai.build_request(anth.parse_request(body, {}), "gpt-up")
    no_nones(built)
    return built


def test_plain_openai_chat_to_anthropic():
    built = to_anthropic(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                {"role": "user", "content": "Hi"},
                {"role": "user", "content": "Anyone there?"},
            ],
            "temperature": 0,
            "stop": "END",
            "seed": 7,
        }
    )
    assert built == {
        "model": "claude-up",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "No emoji."}],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "Anyone there?"}],
            }
        ],
        "temperature": 0,
        "stop_sequences": ["END"],
    }


def test_temperature_zero_survives_both_ways_and_is_clamped_for_anthropic():
    req = oai.parse_request(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0}, {}
    )
    assert req.temperature == 0
    assert oai.build_request(req, "m")["temperature"] == 0
    hot = oai.parse_request(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 1.7}, {}
    )
    assert anth.build_request(hot, "m")["temperature"] == 1.0
    assert oai.build_request(hot, "m")["temperature"] == 1.7


def test_images_base64_and_url_both_ways():
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
    }
    req = oai.parse_request(body, {})
    assert req.messages[0].content[1:] == [
        ImagePart(media_type="image/png", data=PNG),
        ImagePart(url="https://example.com/cat.jpg"),
    ]
    built = anth.build_request(req, "c")
    assert built["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    back = oai.build_request(anth.parse_request(built, {}), "g")
    assert back["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]


def test_anthropic_system_blocks_keep_cache_control_and_a_late_system_message_stays_in_place():
    body = {
        "model": "claude",
        "max_tokens": 100,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Project rules."},
        ],
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "Late reminder."},
            {"role": "assistant", "content": "hello"},
        ],
    }
    req = anth.parse_request(body, {})
    assert [p.text for p in req.system] == ["You are Claude Code.", "Project rules."]
    assert [m.role for m in req.messages] == ["user", "system", "assistant"]
    built = anth.build_request(req, "claude-up")
    assert built["system"][0] == {
        "type": "text",
        "text": "You are Claude Code.",
        "cache_control": {"type": "ephemeral"},
    }
    # Anthropic takes no system turns in `messages`: there it joins `system`.
    assert [b["text"] for b in built["system"]] == ["You are Claude Code.", "Project rules.", "Late reminder."]
    assert [m["role"] for m in built["messages"]] == ["user", "assistant"]
    assert to_openai(body)["messages"] == [
        {"role": "system", "content": "You are Claude Code.\n\nProject rules."},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Late reminder."},
        {"role": "assistant", "content": "hello"},
    ]
    assert anth.parse_request({**body, "system": "plain"}, {}).system[0] == TextPart("plain")


OPENAI_TOOL_CONVERSATION = {
    "model": "gpt-4o",
    "messages": [
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_t",
                    "type": "function",
                    "function": {"name": "time", "arguments": '{"tz":"CET"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_w", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_t", "content": [{"type": "text", "text": "14:00"}]},
        {"role": "user", "content": "Thanks, and?"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather now",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "time"}},
    ],
    "tool_choice": "required",
    "parallel_tool_calls": False,
}


def test_openai_parallel_tool_calls_to_anthropic():
    built = to_anthropic(OPENAI_TOOL_CONVERSATION)
    assert built["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather and time in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_w", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_t", "name": "time", "input": {"tz": "CET"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_w",
                    "content": [{"type": "text", "text": "18C"}],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "call_t",
                    "content": [{"type": "text", "text": "14:00"}],
                },
                {"type": "text", "text": "Thanks, and?"},
            ],
        },
    ]
    assert built["tools"] == [
        {
            "name": "weather",
            "description": "Weather now",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert built["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_parallel_tool_round_trip_anthropic_to_openai_and_back():
    anthropic_body = to_anthropic(OPENAI_TOOL_CONVERSATION)
    anthropic_body["messages"][2]["content"][1] = {
        "type": "tool_result",
        "tool_use_id": "call_t",
        "is_error": True,
        "content": [
            {"type": "text", "text": "clock broken"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ],
    }
    openai_body = to_openai(anthropic_body)
    assert openai_body["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_t",
                    "type": "function",
                    "function": {"name": "time", "arguments": '{"tz":"CET"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_w", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_t", "content": "Error: clock broken\n[image omitted]"},
        {"role": "user", "content": "Thanks, and?"},
    ]
    assert openai_body["tool_choice"] == "required" and openai_body["parallel_tool_calls"] is False

    req = anth.parse_request(anthropic_body, {})
    result = req.messages[2].content[1]
    assert result == ToolResultPart("call_t", [TextPart("clock broken"), ImagePart("image/png", PNG)], True)
    again = anth.build_request(req, "c")
    assert again["messages"] == anthropic_body["messages"]


def test_assistant_tool_calls_without_text_omit_content_for_openai():
    body = {
        "model": "c",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "run", "input": {}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
        ],
    }
    messages = to_openai(body)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "run", "arguments": "{}"}}],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "ok"}


SIGNED_THINKING = {
    "model": "claude",
    "max_tokens": 20000,
    "thinking": {"type": "enabled", "budget_tokens": 8000},
    "messages": [
        {"role": "user", "content": "List files"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should run ls.", "signature": "EqQBCkYIBRgCKkD+/sig=="},
                {"type": "redacted_thinking", "data": "ENCRYPTED"},
                {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"cmd": "ls"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
    ],
}


def test_thinking_signature_is_relayed_untouched_to_anthropic():
    req = anth.parse_request(SIGNED_THINKING, {})
    assert req.thinking_budget == 8000
    assert req.messages[1].content[0] == ThinkingPart("I should run ls.", "EqQBCkYIBRgCKkD+/sig==", origin="anthropic")
    built = anth.build_request(req, "claude-up")
    assert built["messages"][0] == {"role": "user", "content": [{"type": "text", "text": "List files"}]}
    assert built["messages"][1] == SIGNED_THINKING["messages"][1]
    assert built["thinking"] == {"type": "enabled", "budget_tokens": 8000}


def test_thinking_is_never_sent_to_openai():
    built = to_openai(SIGNED_THINKING)
    assert built["messages"][1] == {
        "role": "assistant",
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "bash", "arguments": '{"cmd":"ls"}'}}
        ],
    }
    assert "thinking" not in built
    assert built["reasoning_effort"] == "medium"  # the budget asked for (8000), as its level: see wires.effort


def test_unsigned_thinking_is_dropped_for_anthropic_and_thinking_then_left_off():
    body = {
        "model": "gpt",
        "reasoning_effort": "medium",
        "max_tokens": 10000,
        "temperature": 0.2,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "reasoning_content": "hmm",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ],
    }
    req = oai.parse_request(body, {})
    assert req.thinking_budget == 4096
    assert req.messages[1].content[0] == ThinkingPart("hmm")
    built = anth.build_request(req, "c")
    assert [b["type"] for b in built["messages"][1]["content"]] == ["tool_use"]
    # Anthropic rejects thinking when the pending tool call has no signed thinking before it.
    assert "thinking" not in built and built["temperature"] == 0.2


@pytest.mark.parametrize(
    ("effort", "max_tokens", "expected"),
    [
        ("high", 32000, {"type": "enabled", "budget_tokens": 16384}),
        ("high", 16384, None),
        ("medium", None, None),
        ("low", None, {"type": "enabled", "budget_tokens": 1024}),
        ("low", 2048, {"type": "enabled", "budget_tokens": 1024}),
        ("none", 32000, None),
    ],
)
def test_reasoning_effort_becomes_a_budget_only_when_it_fits(effort, max_tokens, expected):
    body = {
        "model": "g",
        "messages": [{"role": "user", "content": "x"}],
        "reasoning_effort": effort,
        "temperature": 0,
        "top_p": 0.5,
    }
    if max_tokens:
        body["max_tokens"] = max_tokens
    built = anth.build_request(oai.parse_request(body, {}), "c")
    assert built.get("thinking") == expected
    if expected:
        assert "temperature" not in built and "top_p" not in built  # Anthropic forbids them with thinking
    else:
        assert built["temperature"] == 0 and built["top_p"] == 0.5


@pytest.mark.parametrize(
    ("openai_choice", "anthropic_choice"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "weather"}}, {"type": "tool", "name": "weather"}),
    ],
)
def test_tool_choice_maps_both_ways(openai_choice, anthropic_choice):
    tools = [{"type": "function", "function": {"name": "weather"}}]
    body = {
        "model": "g",
        "messages": [{"role": "user", "content": "x"}],
        "tools": tools,
        "tool_choice": openai_choice,
    }
    built = to_anthropic(body)
    assert built["tool_choice"] == anthropic_choice
    assert oai.build_request(anth.parse_request(built, {}), "g")["tool_choice"] == openai_choice


def test_stop_sequences_both_ways():
    req = anth.parse_request(
        {
            "model": "c",
            "max_tokens": 5,
            "stop_sequences": ["###", "END"],
            "messages": [{"role": "user", "content": "x"}],
        },
        {},
    )
    assert oai.build_request(req, "g")["stop"] == ["###", "END"]
    back = oai.parse_request(oai.build_request(req, "g"), {})
    assert anth.build_request(back, "c")["stop_sequences"] == ["###", "END"]


def test_openai_build_carries_sampling_streaming_and_user():
    req = ChatRequest(
        model="x",
        messages=anth.parse_request(
            {"model": "c", "max_tokens": 300, "messages": [{"role": "user", "content": "x"}]}, {}
        ).messages,
        max_tokens=300,
        top_p=0.9,
        seed=3,
        user="u1",
        stream=True,
    )
    assert oai.build_request(req, "gpt") == {
        "model": "gpt",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 300,
        "top_p": 0.9,
        "seed": 3,
        "user": "u1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_openai_request_fields():
    req = oai.parse_request(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "x"}],
            "max_completion_tokens": 50,
            "max_tokens": 9,
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": "alice",
            "stop": ["a", "b"],
            "response_format": {"type": "json_object"},
        },
        {"Authorization": "Bearer sk-secret", "OpenAI-Organization": "org"},
    )
    assert (req.max_tokens, req.stream, req.include_usage, req.user, req.stop) == (
        50,
        True,
        True,
        "alice",
        ["a", "b"],
    )
    assert (req.protocol, req.client_headers) == ("openai", {})
    assert req.raw["response_format"] == {"type": "json_object"}


CLAUDE_CODE_TOOLS = [
    {
        "name": name,
        "description": f"The {name} tool",
        "input_schema": {"type": "object", "properties": {"arg": {"type": "string"}}, "required": ["arg"]},
    }
    for name in [
        "Task",
        "Bash",
        "Glob",
        "Grep",
        "LS",
        "Read",
        "Edit",
        "MultiEdit",
        "Write",
        "WebFetch",
        "TodoWrite",
    ]
] + [{"name": "ExitPlanMode", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}]


def test_claude_code_shaped_request_parses():
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 128000,
        "stream": True,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Environment: linux", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                    {"type": "text", "text": "Fix the bug", "cache_control": {"type": "ephemeral"}},
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/s.png"}},
                ],
            },
            {"role": "system", "content": [{"type": "text", "text": "mid-conversation note"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "look", "signature": "sig"},
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_1",
                        "name": "web_search",
                        "input": {"q": "x"},
                    },
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                    {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"arg": "a.py"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "cache_control": {"type": "ephemeral"},
                        "content": [
                            {"type": "text", "text": "print(1)"},
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                            },
                            {
                                "type": "document",
                                "source": {"type": "text", "media_type": "text/plain", "data": "doc"},
                            },
                        ],
                    },
                ],
            },
        ],
        "tools": CLAUDE_CODE_TOOLS,
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
        "metadata": {"user_id": "user_abc_account_x_session_y"},
        "temperature": 1,
    }
    headers = {
        "X-Api-Key": "sk-ant-secret",
        "Anthropic-Version": "2023-06-01",
        "Anthropic-Beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
        "Authorization": "Bearer x",
    }
    req = anth.parse_request(body, headers)
    assert req.max_tokens == 128000 and req.stream
    assert len(req.tools) == 12 and req.tools[-1].description is None
    assert req.thinking_budget == 4096
    assert req.user == "user_abc_account_x_session_y"
    assert req.messages[1] == Message("system", [TextPart("mid-conversation note")])
    assert req.client_headers == {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    }
    assert req.raw is body and req.protocol == "anthropic"
    assert [type(p).__name__ for p in req.messages[0].content] == ["TextPart", "TextPart", "ImagePart"]
    assert [type(p).__name__ for p in req.messages[2].content] == ["ThinkingPart", "ToolCallPart"]
    assert req.messages[2].content[1] == ToolCallPart("toolu_1", "Read", '{"arg":"a.py"}')
    assert req.messages[3].content[0].content == [
        TextPart("print(1)"),
        ImagePart("image/png", PNG),
        TextPart("doc"),
    ]
    built = anth.build_request(req, "claude-up")
    assert built["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert built["max_tokens"] == 128000 and "context_management" not in built
    count = anth.parse_count_tokens_request({k: v for k, v in body.items() if k != "max_tokens"}, headers)
    assert count.max_tokens is None and len(count.messages) == 4


def test_adaptive_thinking_defaults_to_high_effort():
    body = {
        "model": "c",
        "max_tokens": 64000,
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "x"}],
    }
    assert anth.parse_request(body, {}).thinking_budget == 16384
    assert anth.parse_request({**body, "thinking": {"type": "disabled"}}, {}).thinking_budget is None


def test_tool_ids_from_other_servers_are_made_acceptable_to_anthropic():
    body = {
        "model": "g",
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "functions.run:0",
                        "type": "function",
                        "function": {"name": "run", "arguments": "not json"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "functions.run:0", "content": "ok"},
        ],
    }
    built = to_anthropic(body)
    assert built["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "functions_run_0",
        "name": "run",
        "input": {},
    }
    assert built["messages"][2]["content"][0]["tool_use_id"] == "functions_run_0"


OPENAI_BASE = {"model": "g", "messages": [{"role": "user", "content": "x"}]}
ANTHROPIC_BASE = {"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"messages": []}, "model"),
        ({"model": "g"}, "messages"),
        ({"model": "g", "messages": {}}, "messages"),
        ({"model": "g", "messages": []}, "messages"),
        ({**OPENAI_BASE, "messages": ["hi"]}, "messages[0]"),
        ({**OPENAI_BASE, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({**OPENAI_BASE, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {**OPENAI_BASE, "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0].type",
        ),
        ({**OPENAI_BASE, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({**OPENAI_BASE, "max_tokens": 0}, "max_tokens"),
        ({**OPENAI_BASE, "max_tokens": "5"}, "max_tokens"),
        ({**OPENAI_BASE, "max_tokens": True}, "max_tokens"),
        ({**OPENAI_BASE, "temperature": "hot"}, "temperature"),
        ({**OPENAI_BASE, "temperature": 3}, "temperature"),
        ({**OPENAI_BASE, "stop": [1]}, "stop"),
        ({**OPENAI_BASE, "tool_choice": "sometimes"}, "tool_choice"),
        ({**OPENAI_BASE, "tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ({**OPENAI_BASE, "reasoning_effort": "extreme"}, "reasoning_effort"),
        ({**OPENAI_BASE, "n": 2}, "n"),
    ],
)
def test_malformed_openai_requests_are_invalid_request(body, param):
    with pytest.raises(GatewayError) as caught:
        oai.parse_request(body, {})
    assert caught.value.kind == "invalid_request" and caught.value.status == 400
    assert caught.value.param == param
    assert caught.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ("not an object", None),
        ({**ANTHROPIC_BASE, "model": ""}, "model"),
        ({k: v for k, v in ANTHROPIC_BASE.items() if k != "max_tokens"}, "max_tokens"),
        ({**ANTHROPIC_BASE, "max_tokens": -1}, "max_tokens"),
        ({**ANTHROPIC_BASE, "messages": "hello"}, "messages"),
        ({**ANTHROPIC_BASE, "messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
        ({**ANTHROPIC_BASE, "messages": [{"role": "user"}]}, "messages.0.content"),
        (
            {**ANTHROPIC_BASE, "messages": [{"role": "user", "content": [{"text": "no type"}]}]},
            "messages.0.content.0",
        ),
        (
            {**ANTHROPIC_BASE, "messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
            "messages.0.content.0.text",
        ),
        ({**ANTHROPIC_BASE, "temperature": 1.5}, "temperature"),
        ({**ANTHROPIC_BASE, "system": 5}, "system"),
        ({**ANTHROPIC_BASE, "tools": [{"description": "nameless"}]}, "tools.0.name"),
        ({**ANTHROPIC_BASE, "tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({**ANTHROPIC_BASE, "thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
    ],
)
def test_malformed_anthropic_requests_are_invalid_request(body, param):
    with pytest.raises(GatewayError) as caught:
        anth.parse_request(body, {})
    assert caught.value.kind == "invalid_request" and caught.value.param == param


def test_anthropic_parse_tolerates_what_real_clients_send():
    body = {
        **ANTHROPIC_BASE,
        "some_future_field": {"x": 1},
        "tools": [
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"name": "plain", "input_schema": {"type": "object"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "search_result", "source": "s", "title": "t", "content": []},
                    {"type": "container_upload", "file_id": "f"},
                    {"type": "text", "text": "hi", "citations": None},
                ],
            }
        ],
    }
    req = anth.parse_request(body, {})
    assert [t.name for t in req.tools] == ["plain"]
    assert req.messages[0].content == [TextPart("hi")]
