"""Records what the pinned Claude Code CLI sends, into tests/agents/fixtures/; rerun it when the pin
changes:

    .venv/bin/python -m tests.agents.record_claude_code

The fake Anthropic upstream answers each turn with a short text, so what Claude Code sends is what it
sends to Anthropic. Three requests: a session's first turn, its second (`--continue`), and the
first turn of another session in another folder, to compare what changes between sessions."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from fakes.upstream import FakeAnthropic, RecordedRequest, Reply
from tests.agents import claude_code, tools

FIXTURES = Path(__file__).parent / "fixtures"
SECRET_HEADERS = {"x-api-key", "authorization"}


def recorded(request: RecordedRequest) -> dict[str, Any]:
    headers = {k: ("<redacted>" if k in SECRET_HEADERS else v) for k, v in request.headers.items()}
    return {"method": request.method, "path": request.path, "query": request.query, "headers": headers,
            "body": request.json}


async def capture(cli: Path, *prompts: str) -> list[dict[str, Any]]:
    """One session of `prompts`: the first with `claude -p`, each later one with `--continue`."""
    async with FakeAnthropic(*(Reply(text=f"answer {n}") for n in range(len(prompts)))) as up:
        with tempfile.TemporaryDirectory() as tmp:
            async with claude_code.sandbox(Path(tmp), up.url) as box:
                for n, prompt in enumerate(prompts):
                    run = await box.run(cli, prompt, *(["--continue"] if n else []))
                    assert run.returncode == 0, run.explain()
    return [recorded(r) for r in up.requests]


def save(name: str, request: dict[str, Any]) -> None:
    (FIXTURES / name).write_text(json.dumps(request, indent=1, ensure_ascii=False) + "\n")


async def main() -> None:
    cli = tools.installed()["claude"]
    FIXTURES.mkdir(exist_ok=True)
    first, second = await capture(cli, "say hi", "say bye")
    save("claude_code_turn1.json", first)
    save("claude_code_turn2.json", second)
    (other,) = await capture(cli, "hello there")
    save("claude_code_other_session.json", other)


if __name__ == "__main__":
    asyncio.run(main())
