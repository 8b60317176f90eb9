"""Claude Code through mlxgw. Its billing block (a first system block that changes per conversation)
is dropped for every model but Anthropic's: replayed from its recorded request with the anthropic
SDK to the local demo model, a Chat Completions and a Responses upstream, and kept in passthrough to
an Anthropic one. Then the real CLI (`claude -p`, pinned in tests/agents/tools.py): two turns of one
session and a new session on the local demo model, the later two read from the prefix cache, and
its billing block reaching an Anthropic upstream as sent. Its home is a temporary folder; it reaches nothing but
127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anthropic
import pytest

from fakes.upstream import FakeAnthropic, FakeOpenAI, FakeResponses, Reply
from mlxgw import paths
from mlxgw.worker.demo import build_demo_model
from tests.agents import claude_code
from tests.agents.helpers import UPSTREAM_KEY, Tap, gateway
from tests.daemon.helpers import free_port
from tests.foundation.helpers import cli
from tests.local.helpers import local_gateway

FIXTURES = Path(__file__).parent / "fixtures"

START_TIMEOUT_S = 60.0
# A safety net only: the turn-ending copy of the demo below stops long before it.
OUTPUT_TOKENS = 64
BILLING_PREFIX = "x-anthropic-billing-header: cc_version=2.1.332."


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")


def turn_ending_copy(demo_dir: Path, dest: Path) -> Path:
    """The demo model with half its vocabulary and its tool-call and thinking markers as end-of-turn
    tokens: its random weights would otherwise talk until the output limit, which Claude Code takes
    for a failed turn (it retries, then exits 1), or open a tool call it cannot finish. So each answer
    is a token or two of plain text and a real end of turn."""
    shutil.copytree(demo_dir, dest)
    config = json.loads((dest / "config.json").read_text())
    added = json.loads((dest / "tokenizer.json").read_text())["added_tokens"]
    markers = [t["id"] for t in added if not t["special"]]
    ends = sorted({config["eos_token_id"], *range(1, config["vocab_size"], 2), *markers})
    (dest / "config.json").write_text(json.dumps({**config, "eos_token_id": ends}))
    return dest


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, config: str) -> AsyncIterator[str]:
    """`mlxgw serve` in a subprocess on this test's home with `config` as its TOML; yields its URL."""
    port = free_port()
    path = paths.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n{config}')
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mlxgw", "serve"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        await _until_healthy(url, proc, tmp_path / "serve.log")
        yield url
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _until_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for _ in range(int(START_TIMEOUT_S / 0.1)):
            if proc.poll() is not None:
                raise AssertionError(f"mlxgw serve exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url + "/health") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise AssertionError(f"mlxgw serve did not answer /health within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def recorded(name: str) -> dict:
    """A request body Claude Code sent (tests/agents/fixtures, made by record_claude_code)."""
    return json.loads((FIXTURES / name).read_text())["body"]


async def replay(url: str, body: dict, **changes) -> anthropic.types.Message:
    """`body` (with `changes`) sent the way Claude Code sends it, but whole rather than streamed."""
    body = {**body, **changes, "stream": False}
    client = anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-replay", max_retries=0)
    async with client:
        fields = {k: v for k, v in body.items() if k not in ("model", "max_tokens", "messages")}
        return await client.messages.create(model=body["model"], max_tokens=body["max_tokens"],
                                            messages=body["messages"], extra_body=fields,
                                            extra_query={"beta": "true"}, timeout=60)


@pytest.mark.parametrize("kind", ["openai", "responses"])
async def test_the_billing_block_is_dropped_for_translated_upstreams(kind):
    body = recorded("claude_code_turn1.json")
    fake = FakeOpenAI if kind == "openai" else FakeResponses
    async with fake(Reply(text="ok"), require_key=UPSTREAM_KEY) as up:
        async with gateway(up, kind, "claude-*", "gpt-5") as url:
            await replay(url, body)
    (received,) = up.requests
    if kind == "openai":
        system, *late = [m["content"] for m in received.json["messages"] if m["role"] == "system"]
    else:
        system = received.json["instructions"]
        late = [m["content"][0]["text"] for m in received.json["input"] if m.get("role") == "system"]
    assert system.startswith("You are a Claude agent, built on Anthropic's Claude Agent SDK."), system[:200]
    assert "x-anthropic-billing-header" not in received.body.decode()
    # The rest of what Claude Code said is all there, its "# Environment" system turn where it was.
    assert [text.startswith("# Environment") for text in late] == [True]


async def test_only_a_block_that_is_the_billing_header_line_is_dropped():
    body = recorded("claude_code_turn1.json")
    billing = body["system"][0]["text"]
    mention = f"Requests carry a line like {billing} for billing."
    system = [{"type": "text", "text": billing + "\n"}, {"type": "text", "text": mention},
              {"type": "text", "text": billing + "\nYou are an agent."}]
    messages = [{"role": "user", "content": billing}]
    async with FakeOpenAI(Reply(text="ok"), require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "openai", "claude-*", "gpt-5") as url:
            await replay(url, body, system=system, messages=messages, tools=[])
    sent = up.requests[0].json["messages"]
    assert sent == [{"role": "system", "content": f"{mention}\n\n{billing}\nYou are an agent."},
                    {"role": "user", "content": billing}]


async def test_the_billing_block_reaches_an_anthropic_upstream_as_sent():
    body = recorded("claude_code_turn1.json")
    async with FakeAnthropic(Reply(text="ok"), require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "anthropic", "claude-*", "claude-sonnet-4-6") as url:
            await replay(url, body)
    (received,) = up.requests
    assert received.json["system"][: len(body["system"])] == body["system"]


async def test_the_local_model_sees_the_same_prompt_whatever_the_billing_suffix(demo_dir):
    """Two sessions' first requests begin with different billing blocks: with the block dropped, the
    local model is given the same tokens as for a request that never had one."""
    first, other = recorded("claude_code_turn1.json"), recorded("claude_code_other_session.json")
    assert first["system"][0] != other["system"][0]
    # A head of Claude Code's own system prompt, no tools: the point is the first tokens, cheaply.
    head = [first["system"][1], {**first["system"][2], "text": first["system"][2]["text"][:2000]}]
    short = {**first, "model": "demo", "max_tokens": 1, "tools": [], "messages": first["messages"][:1]}
    prompts = []
    async with local_gateway(demo_dir) as url:
        for billing in (first["system"][0], other["system"][0], None):
            answer = await replay(url, {**short, "system": [billing, *head] if billing else head})
            prompts.append(answer.usage.input_tokens + (answer.usage.cache_read_input_tokens or 0))
    assert prompts[0] == prompts[1] == prompts[2], prompts


def request_log() -> list[dict]:
    """`mlxgw log --json`: the request log, oldest first."""
    ran = subprocess.run([sys.executable, "-m", "mlxgw", "log", "--json", "-n", "50"], capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    return [json.loads(line) for line in ran.stdout.splitlines() if line.strip()]


async def test_claude_code_continues_a_session_on_the_local_model_from_the_cache(agent_clis, tmp_path, demo_dir):
    """Turn 2 of a session reads its prompt from the cache; a new session's first turn, whose billing
    block differs, reads the head every session shares (Claude Code's ~12k tokens of system prompt
    and tools). The rest of it follows its own first message, the "# Environment" system message
    included, which stays in place (see mlxgw.canonical.Message) and is read afresh."""
    model = turn_ending_copy(demo_dir, tmp_path / "demo")
    config = (f"[local]\nfirst_byte_timeout_s = 60\n\n[[mappings]]\npattern = \"claude-*\"\nbackend = \"local\"\n"
              f"model = \"{model}\"\nmax_output_tokens = {OUTPUT_TOKENS}\n")
    firsts = {}  # run -> the index of its first request (its main one: the user's new turn)
    key = json.loads(cli("keys", "create", "claude-code", "--json").output)["key"]
    async with serve(tmp_path, config) as url, Tap(url) as tap:
        # Claude Code's main model and its small/fast one both match claude-*.
        async with claude_code.sandbox(tmp_path, tap.url, key=key, ANTHROPIC_SMALL_FAST_MODEL="claude-haiku-4-5",
                                       ANTHROPIC_DEFAULT_HAIKU_MODEL="claude-haiku-4-5") as box:
            runs = {}
            for name, prompt, *args in [("first", "say hi"), ("second", "now say bye", "--continue"),
                                        ("new session", "hello there")]:
                firsts[name] = len(tap.requests)
                runs[name] = await box.run(agent_clis["claude"], prompt, "--max-turns", "1", *args)
                assert runs[name].returncode == 0, f"{name}: {runs[name].explain()}"
        # The shared head: the new session's system prompt and tools with a one-word conversation.
        new = json.loads(tap.requests[firsts["new session"]].body)
        head = await count_tokens(url, key, {**new, "messages": [{"role": "user", "content": "x"}]})
    assert runs["first"].result["session_id"] == runs["second"].result["session_id"]
    assert runs["new session"].result["session_id"] != runs["first"].result["session_id"]
    # One after the other, so the log's rows (complete once the daemon has stopped) are in their order.
    assert {(r.method, r.path) for r in tap.requests} == {("POST", "/v1/messages?beta=true")}
    rows = request_log()
    assert len(rows) == len(tap.requests), rows
    assert all((r["backend"], r["status"], r["client_key"]) == ("local", 200, "claude-code") for r in rows), rows
    for name, shared in (("second", None), ("new session", head)):
        row = rows[firsts[name]]
        prompt = row["input_tokens"] + row["cached_tokens"] + (row["cache_write_tokens"] or 0)
        assert prompt > 10_000, (name, row)  # Claude Code's whole system prompt and tools reached the model
        assert row["cached_tokens"] >= 0.9 * (shared or prompt), (name, shared, row)


async def count_tokens(url: str, key: str, body: dict) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/v1/messages/count_tokens", json=body, headers={"x-api-key": key}) as r:
            assert r.status == 200, await r.text()
            return (await r.json())["input_tokens"]


async def test_claude_code_billing_block_reaches_anthropic_unchanged(agent_clis, tmp_path):
    async with FakeAnthropic(Reply(text="hi from upstream"), require_key=UPSTREAM_KEY) as up:
        async with gateway(up, "anthropic", "claude-*", "claude-sonnet-4-6") as url, Tap(url) as tap:
            async with claude_code.sandbox(tmp_path, tap.url) as box:
                run = await box.run(agent_clis["claude"], "say hi")
    assert run.returncode == 0, run.explain()
    assert run.result["result"] == "hi from upstream"
    (sent,) = [json.loads(r.body) for r in tap.requests if r.path.startswith("/v1/messages")]
    (received,) = up.requests
    billing = sent["system"][0]
    assert billing["text"].startswith(BILLING_PREFIX), billing
    assert received.json["system"][: len(sent["system"])] == sent["system"]
    assert json.dumps(billing["text"]).encode() in received.body
