"""Copies of the demo model whose chat template opens `<think>` (as Qwen3's and DeepSeek-R1's do)
and whose weights are scripted, so that what they think and answer is known whatever the sampler.

Each scripted token gets an input embedding that is a large one-hot of its own (it dominates what
the layers add) and the output head (untied from the embeddings) puts weight in that dimension only
on the token that must follow it: a chain. `thinking_model` thinks THOUGHT, closes the thought
itself and answers ANSWER; `endless_thinker` thinks STEP forever, so only a budget (a forced
`</think>`) lets it reach ANSWER."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ANSWER = " The answer is ready."
THOUGHT = " Let me consider this carefully"
STEP = " step"
GENERATION_PROMPT = "{{- '<|im_start|>assistant\\n' }}"


def thinking_model(demo: Path, dest: Path) -> Path:
    return _scripted(demo, dest, thought=THOUGHT, loops=False)


def endless_thinker(demo: Path, dest: Path) -> Path:
    return _scripted(demo, dest, thought=STEP, loops=True)


def _scripted(demo: Path, dest: Path, *, thought: str, loops: bool) -> Path:
    from mlx import core as mx
    from mlx_lm.utils import load_tokenizer

    tokenizer = load_tokenizer(demo)

    def ids(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    newline, think_end = ids("\n")[-1], tokenizer.think_end_id
    thought_ids, answer_ids = ids(thought), ids(ANSWER)
    (end,) = tokenizer.eos_token_ids
    # The prompt ends with "<think>\n": the thought follows the newline, then the answer the "</think>".
    pairs = list(zip([newline, *thought_ids], thought_ids, strict=False))
    pairs.append((thought_ids[-1], thought_ids[-1] if loops else think_end))
    pairs += list(zip([think_end, *answer_ids], [*answer_ids, end], strict=True))
    sources = [source for source, _ in pairs]
    assert len(set(sources)) == len(sources), "each scripted token must have one successor"

    dest.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(demo / name, dest / name)
    template = (demo / "chat_template.jinja").read_text()
    assert template.count(GENERATION_PROMPT) == 1
    (dest / "chat_template.jinja").write_text(
        template.replace(GENERATION_PROMPT, "{{- '<|im_start|>assistant\\n<think>\\n' }}")
    )
    weights = mx.load(str(demo / "model.safetensors"))
    embed = weights["model.embed_tokens.weight"]
    head = embed * 1  # the other tokens keep their random logits
    head[:, : len(sources)] = 0
    dims = mx.eye(embed.shape[1])[: len(sources)]
    embed[mx.array(sources)] = dims * 100
    for dim, (_, successor) in enumerate(pairs):
        head[successor] = head[successor] + dims[dim] * 5
    mx.save_safetensors(
        str(dest / "model.safetensors"), {**weights, "model.embed_tokens.weight": embed, "lm_head.weight": head}
    )
    config = json.loads((demo / "config.json").read_text())
    (dest / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    return dest
