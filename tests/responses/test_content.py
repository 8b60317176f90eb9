"""What a Responses answer holds besides text: reasoning (as a summary when asked, raw reasoning
text otherwise; Anthropic's signature carried in `encrypted_content` back to Anthropic, OpenAI's
never sent elsewhere), images in the input, and an answer cut at `max_output_tokens`."""

from __future__ import annotations

import pytest

from fakes.upstream import Reply, Thinking
from tests.responses.helpers import CHAT, CLAUDE, MODELS, of_type, streamed

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


async def test_anthropic_thinking_is_a_reasoning_summary_and_goes_back_signed(gateway):
    gateway.anthropic_up.push(Reply(thinking=Thinking("Let me think it over.", "sig-123"), text="42"), Reply(text="Yes."))
    client = gateway.openai()
    events = await streamed(
        client, model=CLAUDE, input="Meaning of life?", reasoning={"effort": "medium", "summary": "auto"}, max_output_tokens=8000
    )
    assert gateway.anthropic_up.requests[0].json["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    final = events[-1].response
    reasoning, message = final.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert [s.text for s in reasoning.summary] == ["Let me think it over."]
    assert "".join(e.delta for e in of_type(events, "response.reasoning_summary_text.delta")) == "Let me think it over."
    assert [e.type for e in events if getattr(e, "item_id", None) == reasoning.id][:2] == [
        "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta"
    ]
    assert reasoning.encrypted_content and message.content[0].text == "42"

    await client.responses.create(
        model=CLAUDE,
        input=[{"role": "user", "content": "Meaning of life?"}, *[i.model_dump(exclude_none=True) for i in final.output],
               {"role": "user", "content": "Sure?"}],
        reasoning={"effort": "medium", "summary": "auto"},
    )
    assistant = gateway.anthropic_up.requests[1].json["messages"][1]
    assert assistant["content"][0] == {"type": "thinking", "thinking": "Let me think it over.", "signature": "sig-123"}


async def test_raw_reasoning_when_no_summary_is_asked(gateway):
    gateway.openai_up.push(Reply(thinking="step one, step two", text="done"))
    events = await streamed(gateway.openai(), model=CHAT, input="think")
    reasoning = events[-1].response.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary == []
    assert [c.text for c in reasoning.content] == ["step one, step two"]
    assert "".join(e.delta for e in of_type(events, "response.reasoning_text.delta")) == "step one, step two"
    (done,) = of_type(events, "response.reasoning_text.done")
    assert done.text == "step one, step two"


async def test_openai_reasoning_state_never_reaches_anthropic(gateway):
    """Codex's second turn brings back a reasoning item another provider minted."""
    await gateway.openai().responses.create(
        model=CLAUDE,
        input=[
            {"role": "user", "content": "run it"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Running."}],
             "content": None, "encrypted_content": "gAAAAABopaque"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec_command", "arguments": "{}", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
        ],
        tools=[{"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {}}}],
    )
    sent = gateway.anthropic_up.requests[-1].json
    blocks = [b["type"] for m in sent["messages"] for b in m["content"]]
    assert blocks == ["text", "tool_use", "tool_result"]
    assert "gAAAAABopaque" not in gateway.anthropic_up.requests[-1].body.decode()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_images_as_data_urls_and_urls(gateway, kind):
    await gateway.openai().responses.create(
        model=MODELS[kind],
        input=[{"role": "user", "content": [
            {"type": "input_text", "text": "Compare"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}", "detail": "auto"},
            {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"},
        ]}],
    )
    (message,) = (gateway.openai_up if kind == "openai" else gateway.anthropic_up).requests[-1].json["messages"]
    if kind == "openai":
        assert [p["type"] for p in message["content"]] == ["text", "image_url", "image_url"]
        assert [p["image_url"]["url"] for p in message["content"][1:]] == [f"data:image/png;base64,{PIXEL}", "https://example.com/cat.png"]
    else:
        assert [b["type"] for b in message["content"]] == ["text", "image", "image"]
        assert message["content"][1]["source"] == {"type": "base64", "media_type": "image/png", "data": PIXEL}
        assert message["content"][2]["source"] == {"type": "url", "url": "https://example.com/cat.png"}


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_max_output_tokens_makes_an_incomplete_response(gateway, kind):
    up = gateway.openai_up if kind == "openai" else gateway.anthropic_up
    cut = Reply(text="It was a dark and", finish="length" if kind == "openai" else "max_tokens")
    up.push(cut, cut)
    client = gateway.openai()

    whole = await client.responses.create(model=MODELS[kind], input="A story", max_output_tokens=5)
    assert whole.status == "incomplete" and whole.incomplete_details.reason == "max_output_tokens"
    assert whole.output_text == "It was a dark and" and whole.output[0].status == "incomplete"
    assert up.requests[0].json["max_completion_tokens" if "max_completion_tokens" in up.requests[0].json else "max_tokens"] == 5

    events = await streamed(client, model=MODELS[kind], input="A story", max_output_tokens=5)
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert events[-1].response.output_text == "It was a dark and" and events[-1].response.usage.output_tokens > 0
