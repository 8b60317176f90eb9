"""The demo model: built offline, deterministic, and a model mlx-lm takes for a chat model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlxgw.worker.demo import CONTEXT_LENGTH, build_demo_model

AGENT_REQUEST = Path(__file__).parents[1] / "agents" / "fixtures" / "codex_turn1.json"


def _digests(directory):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(directory.iterdir())}


def test_build_is_deterministic_and_idempotent(demo_dir, tmp_path):
    lines = []
    again = build_demo_model(tmp_path / "again", progress=lines.append)
    assert lines  # the progress callback heard each step
    assert _digests(again) == _digests(demo_dir)

    lines.clear()
    before = {f.name: f.stat().st_mtime_ns for f in again.iterdir()}
    assert build_demo_model(again, progress=lines.append) == again
    assert {f.name: f.stat().st_mtime_ns for f in again.iterdir()} == before
    assert not lines  # a complete build is left alone


def test_mlx_lm_loads_it_as_a_chat_model_with_tools_and_thinking(demo_dir):
    import mlx_lm

    model, tokenizer = mlx_lm.load(str(demo_dir))
    assert (demo_dir / "chat_template.jinja").is_file()
    assert tokenizer.has_chat_template
    assert tokenizer.has_tool_calling and tokenizer.tool_call_start == "<tool_call>"
    assert tokenizer.tool_parser.__module__ == "mlx_lm.tool_parsers.json_tools"
    assert tokenizer.has_thinking and tokenizer.think_start == "<think>"
    assert tokenizer.eos_token_ids == {tokenizer.convert_tokens_to_ids("<|im_end|>")}
    assert model.args.max_position_embeddings == CONTEXT_LENGTH

    # Any input encodes and round-trips, however exotic: the full byte alphabet is in the vocab.
    exotic = "naïve ☃ 漢字 \x00 🤖"
    assert tokenizer.decode(tokenizer.encode(exotic, add_special_tokens=False)) == exotic

    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    text = mlx_lm.generate(model, tokenizer, prompt, max_tokens=16, verbose=False)
    assert text


def test_template_renders_tools_calls_and_results(demo_tokenizer):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    text = demo_tokenizer.apply_chat_template(
        messages, tools=tools, add_generation_prompt=True, tokenize=False
    )
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in text
    assert (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>' in text
    )
    assert "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_an_agents_whole_prompt_fits_in_few_tokens(demo_tokenizer):
    # Codex's real first request: prose, JSON schemas and code, as coding agents send them.
    text = json.dumps(json.loads(AGENT_REQUEST.read_text())["body"], ensure_ascii=False)
    tokens = len(demo_tokenizer.encode(text, add_special_tokens=False))
    assert tokens / (len(text.encode()) / 1024) < 400  # per KB; the 512-token vocabulary took 665
    assert CONTEXT_LENGTH >= 65536 and tokens < CONTEXT_LENGTH // 4  # Claude Code's prompt is about twice as long
