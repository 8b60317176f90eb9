"""Canonical requests in the HF chat format, rendered by the demo model's template."""

from __future__ import annotations

from mlxgw.backends.local.messages import IMAGE_PLACEHOLDER, to_hf_messages, to_hf_tools
from mlxgw.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)

REQUEST = ChatRequest(
    model="demo",
    system=[TextPart("Be brief."), TextPart("Use tools.")],
    messages=[
        Message("user", [TextPart("Weather?"), ImagePart(media_type="image/png", data="AAAA")]),
        Message(
            "assistant",
            [
                ThinkingPart("need the tool", signature="sig"),
                TextPart("Checking."),
                ToolCallPart("call_1", "get_weather", '{"city": "Paris"}'),
            ],
        ),
        Message(
            "user",
            [
                ToolResultPart("call_1", [TextPart("sunny")]),
                ToolResultPart("call_2", [TextPart("boom")], is_error=True),
            ],
        ),
    ],
    tools=[
        Tool("get_weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}})
    ],
)


def test_messages_convert_in_order():
    assert to_hf_messages(REQUEST) == [
        {"role": "system", "content": "Be brief.\n\nUse tools."},
        {"role": "user", "content": f"Weather?\n{IMAGE_PLACEHOLDER}"},
        {
            "role": "assistant",
            "content": "Checking.",
            "reasoning_content": "need the tool",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error: boom"},
    ]


def test_tools_convert_and_tool_choice_none_hides_them():
    assert to_hf_tools(REQUEST) == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    REQUEST_NONE = ChatRequest(model="demo", messages=[], tools=REQUEST.tools, tool_choice=ToolChoice("none"))
    assert to_hf_tools(REQUEST_NONE) == []


def test_the_demo_template_renders_the_conversion(demo_tokenizer):
    text = demo_tokenizer.apply_chat_template(
        to_hf_messages(REQUEST), tools=to_hf_tools(REQUEST), add_generation_prompt=True, tokenize=False
    )
    assert text.startswith("<|im_start|>system\nBe brief.\n\nUse tools.\n\n# Tools")
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    assert "<tool_response>\nsunny\n</tool_response>\n<tool_response>\nError: boom\n</tool_response>" in text
