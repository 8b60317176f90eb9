"""What the gateway tests share: one answer shape for both SDKs, raw SSE reading, bounded waits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anthropic
import openai
from aiohttp.test_utils import TestServer

from fakes.upstream import FakeAnthropic, FakeOpenAI
from mlxgw.server.app import create_app
from mlxgw.workspace import Workspace

MODEL_FOR = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-6"}  # upstream kind -> a model routed to it
PAIRS = [(c, u) for c in ("openai", "anthropic") for u in ("openai", "anthropic")]
PAIR_IDS = [f"{c}-client-{u}-upstream" for c, u in PAIRS]


def upstream(gateway, kind: str):
    return gateway.openai_up if kind == "openai" else gateway.anthropic_up


@dataclass
class Answer:
    """What a client saw, in either protocol: enough to assert on without caring which SDK."""

    text: str = ""
    tool_calls: list[tuple[str, str, Any]] = field(default_factory=list)  # (id, name, parsed arguments)
    finish: str | None = None  # finish_reason (OpenAI) or stop_reason (Anthropic)
    stop_sequence: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning: str | None = None
    raw: Any = None  # the SDK's own object (OpenAI ChatCompletion / chunks, Anthropic Message)


async def ask_openai(client, *, stream: bool, **kw) -> Answer:
    if not stream:
        r = await client.chat.completions.create(**kw)
        m = r.choices[0].message
        return Answer(
            text=m.content or "",
            tool_calls=[
                (tc.id, tc.function.name, json.loads(tc.function.arguments)) for tc in m.tool_calls or []
            ],
            finish=r.choices[0].finish_reason,
            input_tokens=r.usage.prompt_tokens if r.usage else None,
            output_tokens=r.usage.completion_tokens if r.usage else None,
            reasoning=(m.model_extra or {}).get("reasoning_content"),
            raw=r,
        )
    kw.setdefault("stream_options", {"include_usage": True})
    s = await client.chat.completions.create(stream=True, **kw)
    return fold_openai_chunks([chunk async for chunk in s])


def fold_openai_chunks(chunks: list) -> Answer:
    ans = Answer(raw=chunks)
    calls: dict[int, dict] = {}
    reasoning = ""
    for chunk in chunks:
        if chunk.usage is not None:
            ans.input_tokens, ans.output_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
        for choice in chunk.choices:
            d = choice.delta
            ans.text += d.content or ""
            reasoning += (d.model_extra or {}).get("reasoning_content") or ""
            for tc in d.tool_calls or []:
                call = calls.setdefault(tc.index, {"id": None, "name": "", "args": ""})
                if tc.id:
                    call["id"] = tc.id
                if tc.function and tc.function.name:
                    call["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    call["args"] += tc.function.arguments
            if choice.finish_reason:
                ans.finish = choice.finish_reason
    ans.tool_calls = [(c["id"], c["name"], json.loads(c["args"])) for _, c in sorted(calls.items())]
    ans.reasoning = reasoning or None
    return ans


async def ask_anthropic(client, *, stream: bool, **kw) -> Answer:
    if stream:
        async with client.messages.stream(**kw) as s:
            msg = await s.get_final_message()
    else:
        msg = await client.messages.create(**kw)
    return answer_from_message(msg)


def answer_from_message(msg) -> Answer:
    return Answer(
        text="".join(b.text for b in msg.content if b.type == "text"),
        tool_calls=[(b.id, b.name, b.input) for b in msg.content if b.type == "tool_use"],
        finish=msg.stop_reason,
        stop_sequence=msg.stop_sequence,
        input_tokens=msg.usage.input_tokens,
        output_tokens=msg.usage.output_tokens,
        reasoning="".join(b.thinking for b in msg.content if b.type == "thinking") or None,
        raw=msg,
    )


async def ask(gateway, client_kind: str, *, stream: bool, **kw) -> Answer:
    """One chat turn through the official async SDK of `client_kind`. Anthropic kwargs by default;
    pass OpenAI-shaped kwargs for an OpenAI client."""
    if client_kind == "openai":
        return await ask_openai(gateway.openai(), stream=stream, **kw)
    return await ask_anthropic(gateway.anthropic(), stream=stream, **kw)


# ---- raw HTTP ----------------------------------------------------------------------------------


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def frames(self) -> list[tuple[str | None, str]]:
        """(event, data) of every SSE frame."""
        out = []
        for block in self.body.decode().replace("\r\n", "\n").split("\n\n"):
            event, data = None, []
            for line in block.split("\n"):
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
            if event is not None or data:
                out.append((event, "\n".join(data)))
        return out

    def events(self) -> list[dict]:
        """The JSON payloads of the SSE frames (OpenAI's `[DONE]` left out)."""
        return [json.loads(d) for _, d in self.frames() if d and d != "[DONE]"]


async def post(
    url: str, body: Any = None, *, data: bytes | None = None, headers: dict | None = None, timeout: float = 10
) -> Raw:
    """POST with aiohttp and read the whole answer (streams included), bounded."""
    raw = data if data is not None else json.dumps(body).encode()
    h = {"content-type": "application/json", **(headers or {})}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.post(url, data=raw, headers=h) as resp,
    ):
        return Raw(resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read())


async def get(url: str, *, headers: dict | None = None, timeout: float = 10) -> Raw:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(url, headers=headers or {}) as resp,
    ):
        return Raw(resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read())


ANTHROPIC_HEADERS = {"x-api-key": "client-key", "anthropic-version": "2023-06-01"}
OPENAI_HEADERS = {"authorization": "Bearer client-key"}


async def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll an (async or sync) check until it returns something truthy, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


OPENAI_KEY = "sk-test-openai-upstream-0001"


ANTHROPIC_KEY = "sk-ant-test-upstream-0002"


@dataclass
class Gateway:
    url: str
    server: TestServer
    openai_up: FakeOpenAI
    anthropic_up: FakeAnthropic
    clients: list = field(default_factory=list)  # closed at teardown, while the loop still runs

    def openai(self, **kw) -> openai.AsyncOpenAI:
        kw.setdefault("timeout", 10)
        kw.setdefault("max_retries", 0)
        client = openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=kw.pop("api_key", "client-key"), **kw)
        self.clients.append(client)
        return client

    def anthropic(self, **kw) -> anthropic.AsyncAnthropic:
        kw.setdefault("timeout", 10)
        kw.setdefault("max_retries", 0)
        client = anthropic.AsyncAnthropic(base_url=self.url, api_key=kw.pop("api_key", "client-key"), **kw)
        self.clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self.clients:
            await client.close()

    @property
    def app(self):
        return self.server.app


async def start_gateway(**create_kw) -> tuple[TestServer, str]:
    ws = Workspace.open()
    app = create_app(ws.settings, workspace=ws, reload_interval_s=0.2, **create_kw)
    server = TestServer(app, host="127.0.0.1", port=0, handler_cancellation=True)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/")
