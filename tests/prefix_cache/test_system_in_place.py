"""Late system messages on the local model: Claude Code's turn-ending note stays at the end of the
prompt, so the next turn reads the rest from the cache; a chat template that refuses a system
message after the first turn (or drops one) gets it as `<system-reminder>` user text, in place."""

from __future__ import annotations

import shutil
from pathlib import Path

import anthropic
import pytest

from bench.agent import load_session
from mlxgw.worker.demo import CHAT_TEMPLATE
from tests.local.helpers import local_gateway

LOOP = "{%- for message in messages %}\n"
LATE_SYSTEM = "(message.role == 'system' and not loop.first)"
TEMPLATES = {
    # Gemma's and some Qwen releases' way: a system message anywhere but first is an error.
    "raises": CHAT_TEMPLATE.replace(LOOP, LOOP + "    {%- if message.role == 'system' and not loop.first %}"
                                    "{{- raise_exception('System message must be at the beginning.') }}{%- endif %}\n"),
    # Templates that only know a leading system message: a later one is silently left out.
    "drops": CHAT_TEMPLATE.replace(LATE_SYSTEM, "false"),
}


async def replay(client: anthropic.AsyncAnthropic, body: dict) -> anthropic.types.Message:
    fields = {k: v for k, v in body.items() if k not in ("model", "max_tokens", "messages", "stream")}
    return await client.messages.create(model="demo", max_tokens=1, messages=body["messages"], extra_body=fields,
                                        timeout=120)


async def test_claude_codes_turn_ending_system_note_leaves_the_next_turn_in_the_cache(demo_dir):
    """Request 5 of the recorded session ends with a system message after a tool result; moved to the
    head it rewrote the prompt's start and request 5 read a third of its prompt from the cache."""
    requests = load_session("claude_code")["requests"]
    turn4, turn5 = requests[4]["body"], requests[5]["body"]
    assert turn5["messages"][-1]["role"] == "system"
    async with local_gateway(demo_dir) as url:
        async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0) as client:
            await replay(client, turn4)
            usage = (await replay(client, turn5)).usage
    prompt = usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
    assert prompt > 10_000, usage  # the whole session reached the model
    assert usage.cache_read_input_tokens >= 0.9 * prompt, usage


def template_copy(demo_dir: Path, dest: Path, template: str) -> Path:
    shutil.copytree(demo_dir, dest)
    (dest / "chat_template.jinja").write_text(template)
    return dest


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
async def test_a_template_without_late_system_messages_gets_them_as_reminders_in_place(demo_dir, tmp_path, kind):
    model = template_copy(demo_dir, tmp_path / kind, TEMPLATES[kind])
    messages = [{"role": "user", "content": "hi"}, {"role": "system", "content": "Note A."},
                {"role": "assistant", "content": "hello"}, {"role": "system", "content": "Note B."},
                {"role": "user", "content": "bye"}]
    # Each note joins the user turn next to it, so that roles still alternate.
    expected = [{"role": "system", "content": "Be kind."},
                {"role": "user", "content": "hi\n\n<system-reminder>\nNote A.\n</system-reminder>"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "<system-reminder>\nNote B.\n</system-reminder>\n\nbye"}]
    from mlx_lm.utils import load_tokenizer

    tokens = len(load_tokenizer(model).apply_chat_template(expected, add_generation_prompt=True))
    async with local_gateway(model) as url:
        async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0) as client:
            counted = await client.messages.count_tokens(model="demo", system="Be kind.", messages=messages)
            answer = await client.messages.create(model="demo", max_tokens=4, system="Be kind.", messages=messages,
                                                  timeout=60)
    assert counted.input_tokens == tokens
    assert answer.type == "message" and answer.stop_reason in ("end_turn", "max_tokens"), answer
    assert answer.usage.input_tokens + (answer.usage.cache_read_input_tokens or 0) == tokens, answer.usage
