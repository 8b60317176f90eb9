"""A tiny random-weight Llama that mlx-lm can load, built offline in seconds.

It speaks gibberish, but it exercises everything real models do: a byte-level BPE tokenizer,
a ChatML template that renders tools (so mlx-lm picks its `json_tools` parser), `<think>` markers,
an end-of-turn token, and a 64k context that takes a coding agent's whole prompt. The tests, the
benchmarks and `mlxgw` demos run on it.

Shaped for prefill on a laptop CPU: prefill keeps only each layer's keys and values, so with two
layers only the first layer's attention is computed over the prompt, and one narrow head makes that
as cheap as attention gets while staying quadratic like a real model's (the prefix cache's worth
stays measurable). The vocabulary is trained on the Python standard library's sources and docs as
well, so an agent's prompt of prose, JSON and code takes about half the tokens the few-KB corpus
gave.
"""

from __future__ import annotations

import json
import sysconfig
from collections.abc import Callable
from pathlib import Path

DEMO_SEED = 20240611
VOCAB_SIZE = 8192
CONTEXT_LENGTH = 65536
# How much of the standard library the tokenizer learns from: enough for the common words of
# prose and code, little enough to train in about a second.
STDLIB_CORPUS_BYTES = 4 * 1024 * 1024

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Not "special": they must survive decoding, since mlx-lm finds tool calls and thinking in the text.
MARKER_TOKENS = ["<tool_call>", "</tool_call>", "<think>", "</think>"]

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 1,
    "num_key_value_heads": 1,
    "head_dim": 8,
    "intermediate_size": 128,
    "rms_norm_eps": 1e-5,
    "vocab_size": VOCAB_SIZE,
    "max_position_embeddings": CONTEXT_LENGTH,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
}

# Qwen2.5's template, trimmed: tools in a <tools> block of the system turn, calls as
# <tool_call>{json}</tool_call>, results as <tool_response> inside a user turn.
CHAT_TEMPLATE = """\
{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\\n\\n' }}
    {%- endif %}
    {{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}
    {%- for tool in tools %}
        {{- '\\n' }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) or (message.role == 'assistant' and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
    {%- elif message.role == 'assistant' %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == 'tool' %}
        {%- if loop.index0 == 0 or messages[loop.index0 - 1].role != 'tool' %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

_WORDS = ["the", "a", "an", "of", "to", "and", "in", "is", "it", "that", "for", "on", "with", "as", "was", "at", "by", "from", "this", "be", "are", "or", "have", "not", "model", "token", "local", "gateway", "request", "answer", "stream", "batch", "cache", "prompt", "worker", "tool", "call", "weather", "city", "temperature", "read", "file", "write", "search", "query", "result", "error", "value", "name", "think", "reason", "step", "first", "then", "because", "so", "if", "when", "which", "what", "how", "why", "where", "who", "hello", "world", "please", "thank", "you", "yes", "no", "maybe", "true", "false", "null", "one", "two", "three", "four", "five"]


def _training_text() -> list[str]:
    """A few KB of text in the shapes the model will see: prose, chat turns, JSON tool calls."""
    lines = []
    state = DEMO_SEED
    for i in range(160):
        # A small LCG keeps the corpus (hence the merges) identical on every build and platform.
        words = []
        for _ in range(6 + i % 9):
            state = (state * 1103515245 + 12345) % (1 << 31)
            words.append(_WORDS[state % len(_WORDS)])
        sentence = " ".join(words).capitalize() + (".", "?", "!")[i % 3]
        lines.append(sentence)
        if i % 4 == 0:
            lines.append(f"<|im_start|>user\n{sentence}<|im_end|>\n<|im_start|>assistant\n")
        if i % 7 == 0:
            args = json.dumps({"city": words[0], "days": i % 5, "units": "metric"})
            lines.append(f'<tool_call>\n{{"name": "get_{words[1]}", "arguments": {args}}}\n</tool_call>')
        if i % 11 == 0:
            lines.append(f"<think>\n{sentence}\n</think>\n\n")
    return lines


def _stdlib_text() -> list[str]:
    """The standard library's documentation topics, then its top-level modules in name order, up to
    STDLIB_CORPUS_BYTES: the same text wherever the same Python runs (none if its sources are not
    on disk)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts, total = [], 0
    for path in [root / "pydoc_data" / "topics.py", *sorted(root.glob("*.py"))]:
        if total >= STDLIB_CORPUS_BYTES:
            break
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        texts.append(text)
        total += len(text)
    return texts


def _is_complete(dest: Path) -> bool:
    names = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    if not all((dest / name).is_file() for name in names):
        return False
    try:
        return json.loads((dest / "config.json").read_text()) == _config_with_eos(dest)
    except (OSError, ValueError):
        return False


def _config_with_eos(dest: Path) -> dict:
    tokenizer = json.loads((dest / "tokenizer.json").read_text())
    ids = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    return {**CONFIG, "eos_token_id": ids["<|im_end|>"]}


def _build_tokenizer(dest: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(MARKER_TOKENS),
        special_tokens=SPECIAL_TOKENS,
        # The full byte alphabet: any input encodes, whatever the corpus lacked.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_text() + _stdlib_text(), trainer)
    tokenizer.add_tokens(MARKER_TOKENS)

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=CONTEXT_LENGTH,
    )
    # transformers 5 writes the template to chat_template.jinja, which mlx-lm's loader reads.
    fast.save_pretrained(dest)


def _build_weights(dest: Path, config: dict) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    mx.random.seed(DEMO_SEED)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    weights = dict(tree_flatten(model.parameters()))
    # At the default initialisation the model only repeats one token. Sharper matrices make it
    # wander through the vocabulary; damping the embeddings of the special tokens and the 256 byte
    # tokens (the first rows) makes it prefer whole merged words to stray invalid bytes, and
    # damping the markers (the last rows) keeps most of its text out of <think> blocks.
    n_low = len(SPECIAL_TOKENS) + 256
    n_words = VOCAB_SIZE - n_low - len(MARKER_TOKENS)
    damp = mx.full((n_low, 1), 0.3), mx.ones((n_words, 1)), mx.full((len(MARKER_TOKENS), 1), 0.3)
    rows = mx.concatenate(damp)
    for name, value in weights.items():
        if value.ndim == 2:
            weights[name] = value * 3.0
    weights["model.embed_tokens.weight"] *= rows
    mx.save_safetensors(str(dest / "model.safetensors"), weights, metadata={"format": "mlx"})


def build_demo_model(dest: Path, *, progress: Callable[[str], None] | None = None) -> Path:
    """Build the demo model into `dest` (created if needed) and return `dest`.

    Deterministic: the same files on every build. A `dest` that already holds a complete build is
    left as it is. `progress`, if given, is called with a short line per step.
    """
    dest = Path(dest)
    if _is_complete(dest):
        return dest
    say = progress or (lambda _line: None)
    dest.mkdir(parents=True, exist_ok=True)
    say("training the tokenizer")
    _build_tokenizer(dest)
    config = _config_with_eos(dest)
    say("initialising the weights")
    _build_weights(dest, config)
    # The config goes last: its presence, with the right content, marks a complete build.
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    say(f"demo model ready in {dest}")
    return dest
