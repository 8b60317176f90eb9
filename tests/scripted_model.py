"""A copy of the offline demo model that says a fixed text after any prompt, then ends its turn.

Random weights never end a turn nor write a tool call on cue; tests that need a local model to say
something exact (an agent's answer, a malformed tool call) script it with this."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def scripted_model(demo: Path, dest: Path, text: str, *, words: tuple[str, ...] = ()) -> Path:
    """A copy of the demo model at `dest` that says `text` after any prompt, then its end-of-turn token.

    The prompt ends with the generation prompt's newline. Each token of the chain newline → the
    text's tokens → end gets an input embedding that is a large one-hot of its own (so it dominates
    what the layers add), and an output head (untied from the embeddings) whose only weight in that
    dimension is on the chain's next token: whatever the sampler, each step picks the next one.

    A chain cannot repeat a token (a token has one successor), and JSON repeats `"` and `:`: each of
    `words` (no whitespace in them, so that the byte-level detokenizer shows them as they are) is
    added to the copy's vocabulary as one token, so a text built from them need not repeat any."""
    from mlx import core as mx
    from mlx_lm.utils import load_tokenizer
    from tokenizers import AddedToken, Tokenizer

    dest.mkdir(parents=True)
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(demo / name, dest / name)
    vocabulary = Tokenizer.from_file(str(demo / "tokenizer.json"))
    vocabulary.add_tokens([AddedToken(word, normalized=False, special=False) for word in words])
    vocabulary.save(str(dest / "tokenizer.json"))
    tokenizer = load_tokenizer(dest)
    chain = [tokenizer.encode("\n", add_special_tokens=False)[-1], *tokenizer.encode(text, add_special_tokens=False)]
    assert len(set(chain)) == len(chain), "the chain must not repeat a token: add the repeated parts as words"
    (end,) = tokenizer.eos_token_ids
    weights = mx.load(str(demo / "model.safetensors"))
    embed = weights["model.embed_tokens.weight"]
    size = max(embed.shape[0], vocabulary.get_vocab_size())
    embed = mx.concatenate([embed, mx.zeros((size - embed.shape[0], embed.shape[1]), dtype=embed.dtype)])
    head = embed * 1  # the other tokens keep their random logits
    head[:, : len(chain)] = 0
    dims = mx.eye(embed.shape[1], dtype=embed.dtype)[: len(chain)]
    embed[mx.array(chain)] = dims * 100
    head[mx.array([*chain[1:], end])] = dims * 5
    mx.save_safetensors(str(dest / "model.safetensors"), {**weights, "model.embed_tokens.weight": embed,
                                                           "lm_head.weight": head})
    config = json.loads((demo / "config.json").read_text())
    (dest / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False, "vocab_size": size}))
    return dest
