"""What the prefix-cache tests share: workers and gateways on the demo model with budgets of their
own, prompts long enough to be worth caching, and what the chat template makes of them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from mlxgw import paths
from mlxgw.backends.local import LocalBackend
from mlxgw.backends.local.messages import to_hf_messages, to_hf_tools
from mlxgw.canonical import ChatRequest, Event, Message, TextPart, Tool, collect
from mlxgw.settings import LocalSettings, Policy
from tests.gateway.helpers import start_gateway

WAIT_S = 60.0
WORDS = [
    "the", "gateway", "reads", "each", "request", "and", "answers", "it", "from", "local", "model", "or", "cloud",
    "with", "same", "tools", "files", "are", "edited", "in", "place", "when", "user", "asks", "every", "change",
]  # fmt: skip


def prose(words: int, seed: int = 0) -> str:
    """`words` words of repeatable text (a demo-model token or so each); `seed` picks the order."""
    state, out = seed + 1, []
    for _ in range(words):
        state = (state * 1103515245 + 12345) % (1 << 31)
        out.append(WORDS[state % len(WORDS)])
    return " ".join(out)


# A coding agent's system prompt and tools in miniature: the head every session and sub-agent shares.
SYSTEM = "You are a coding agent. " + prose(1400, seed=1)
TOOLS = [
    Tool("read_file", "Read a file from the workspace.", {"type": "object", "properties": {"path": {"type": "string"}}}),
    Tool("run", "Run a shell command.", {"type": "object", "properties": {"command": {"type": "string"}}}),
]


def chat(text: str, *, system: str | None = None, tools: list[Tool] | None = None, **fields) -> ChatRequest:
    fields.setdefault("max_tokens", 24)
    fields.setdefault("temperature", 0.0)
    return ChatRequest(
        model="demo",
        messages=[Message("user", [TextPart(text)])],
        system=[TextPart(system)] if system else [],
        tools=tools or [],
        **fields,
    )


def session(question: str, **fields) -> ChatRequest:
    """An agent's first request: the shared head, then the user's own question."""
    return chat(question, system=SYSTEM, tools=TOOLS, **fields)


def follow_up(request: ChatRequest, answer, text: str) -> ChatRequest:
    """The next turn of `request`'s conversation, `answer` its reply."""
    messages = [*request.messages, Message("assistant", answer.content), Message("user", [TextPart(text)])]
    return ChatRequest(**{**vars(request), "messages": messages})


def prompt_tokens(tokenizer, request: ChatRequest, *, generation_prompt: bool = True) -> list[int]:
    """The prompt the worker makes of `request`."""
    return tokenizer.apply_chat_template(
        to_hf_messages(request), tools=to_hf_tools(request) or None, add_generation_prompt=generation_prompt
    )


def history_tokens(tokenizer, request: ChatRequest) -> list[int]:
    """The earlier turns of `request` (all but its last message) as the template renders them."""
    return tokenizer.apply_chat_template(
        to_hf_messages(request)[:-1], tools=to_hf_tools(request) or None, add_generation_prompt=False
    )


def shared(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def local_backend(demo_dir: Path, **settings) -> LocalBackend:
    local = LocalSettings(**settings, policy=Policy(first_byte_timeout_s=WAIT_S))
    return LocalBackend(models={"demo": str(demo_dir)}, settings=local)


@contextlib.asynccontextmanager
async def worker(demo_dir: Path, **settings) -> AsyncIterator[LocalBackend]:
    """A worker of the test's own (its home is the test's), closed the way the daemon closes it."""
    local = local_backend(demo_dir, **settings)
    try:
        yield local
    finally:
        await asyncio.wait_for(local.close(), WAIT_S)


async def run(local: LocalBackend, request: ChatRequest) -> list[Event]:
    async def drain() -> list[Event]:
        return [event async for event in local.stream(request, "demo")]

    return await asyncio.wait_for(drain(), WAIT_S)


async def answer(local: LocalBackend, request: ChatRequest):
    return collect(await run(local, request))


async def cache_status(local: LocalBackend) -> dict:
    return (await asyncio.wait_for(local.status(), WAIT_S))["prompt_cache"]


async def until(predicate, *, timeout: float = WAIT_S, interval: float = 0.02):
    """Poll an async predicate until it returns something truthy; return that."""

    async def poll():
        while not (value := await predicate()):
            await asyncio.sleep(interval)
        return value

    return await asyncio.wait_for(poll(), timeout)


async def written(local: LocalBackend) -> dict:
    """The disk cache's status once every save asked for is on disk (the last answer's turn
    computed ahead, and written)."""

    async def done():
        status = await asyncio.wait_for(local.status(), WAIT_S)
        disk = status["prompt_cache"]["disk"]
        return disk if status["computing_ahead"] == 0 and disk["pending_writes"] == 0 else None

    return await until(done)


def hybrid_model(demo_dir: Path, dest: Path) -> Path:
    """A random-weight LFM2 (a convolution layer, then attention) with the demo's tokenizer: a model
    whose cache has recurrent state, which cannot be trimmed back to a shorter prefix."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import lfm2

    dest.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(demo_dir / name, dest / name)
    demo = json.loads((demo_dir / "config.json").read_text())
    config = {
        "model_type": "lfm2", "vocab_size": demo["vocab_size"], "eos_token_id": demo["eos_token_id"],
        "max_position_embeddings": demo["max_position_embeddings"], "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 1, "num_key_value_heads": 1, "norm_eps": 1e-5, "conv_bias": False, "conv_L_cache": 3,
        "block_dim": 64, "block_multiple_of": 16, "block_ffn_dim_multiplier": 1.0, "block_auto_adjust_ff_dim": False,
        "block_ff_dim": 128, "layer_types": ["conv", "full_attention"],
    }  # fmt: skip
    mx.random.seed(1)
    model = lfm2.Model(lfm2.ModelArgs.from_dict(config))
    mx.save_safetensors(str(dest / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (dest / "config.json").write_text(json.dumps(config))
    return dest


@contextlib.asynccontextmanager
async def gateway(model_dir: Path, local: dict | None = None) -> AsyncIterator[str]:
    """The real gateway with `demo` mapped to `model_dir` and [local] set to `local`."""
    lines = ["[server]", 'host = "127.0.0.1"', "port = 8421", "", "[local]"]
    lines += [f"{key} = {value!r}" for key, value in {"first_byte_timeout_s": WAIT_S, **(local or {})}.items()]
    lines += ["", "[[mappings]]", 'pattern = "demo"', 'backend = "local"', f'model = "{model_dir}"']
    path = paths.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    server, url = await start_gateway()
    try:
        yield url
    finally:
        await server.close()
