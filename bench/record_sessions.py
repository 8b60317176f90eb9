"""Records one multi-turn coding session of each pinned agent CLI into bench/sessions/ for
`scripts/bench agent`; rerun it when a pin in tests/agents/tools.py changes:

    .venv/bin/python -m bench.record_sessions

The real `claude -p` and `codex exec` work in a small project folder against a scripted fake
upstream (the `fakes` package) that answers with tool calls (list the files, read two, run the tests,
fix the bug, run the tests again) and then a summary; the agents run the tools for real, so every
later request carries real tool results. Each request is kept as the agent sent it (body and the
protocol headers that matter; never a key)."""

from __future__ import annotations

import asyncio
import json
import lzma
import tempfile
from pathlib import Path
from typing import Any

from fakes import FakeAnthropic, FakeResponses, Reply, ToolCall
from tests.agents import claude_code, codex, tools

SESSIONS = Path(__file__).parent / "sessions"
# Headers that change what a server does with a body; the rest (keys, ids, user agents) is not kept.
KEPT_HEADERS = ("anthropic-version", "anthropic-beta")
RUN_TIMEOUT_S = 180.0
PROMPT = "The tests of this project fail. Find out why and fix it."

PROJECT = {
    "README.md": "# tally\n\nCounts the words of a text: `python3 tally.py FILE`.\n",
    "tally.py": (
        '"""Word counts."""\n\nimport sys\n\n\ndef count_words(text):\n    return len(text.split(" "))\n\n\n'
        'if __name__ == "__main__":\n    print(count_words(open(sys.argv[1]).read()))\n'
    ),
    "test_tally.py": (
        "import unittest\n\nfrom tally import count_words\n\n\nclass CountWords(unittest.TestCase):\n"
        "    def test_spaces(self):\n        self.assertEqual(count_words(\"a  b\\n c\"), 3)\n\n\n"
        'if __name__ == "__main__":\n    unittest.main()\n'
    ),
}
SUMMARY = ("count_words split on single spaces, so runs of spaces and newlines counted as words; "
           "it now uses str.split() and the test passes.")


def _project(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    for name, text in PROJECT.items():
        (work / name).write_text(text)


class MainLoopAnthropic(FakeAnthropic):
    """Scripted replies go to the agent's main loop (requests with tools) only; its side requests
    (a title, a quota probe) get a short text without using up the script."""

    def _next(self, endpoint: str | None = None) -> Reply:
        body = self.requests[-1].json if self.requests else None
        if endpoint is None and not (isinstance(body, dict) and body.get("tools")):
            return Reply(text="Fixing the tally tests")
        return super()._next(endpoint)


def _claude_script(work: Path) -> list[Reply]:
    def call(name: str, **arguments: Any) -> Reply:
        return Reply(tool_calls=[ToolCall(name, arguments)])

    return [
        call("Bash", command="ls -la", description="List the project's files"),
        call("Read", file_path=str(work / "README.md")),
        call("Read", file_path=str(work / "tally.py")),
        call("Bash", command="python3 -m unittest -q test_tally", description="Run the tests"),
        call("Edit", file_path=str(work / "tally.py"), old_string='text.split(" ")', new_string="text.split()"),
        call("Bash", command="python3 -m unittest -q test_tally", description="Run the tests again"),
        Reply(text=SUMMARY),
    ]


def _codex_script() -> list[Reply]:
    def call(cmd: str, why: str) -> Reply:
        return Reply(thinking=why, tool_calls=[ToolCall("exec_command", {"cmd": cmd})])

    return [
        call("ls -la", "Listing the project."),
        call("cat README.md", "Reading the README."),
        call("cat tally.py", "Reading the code."),
        call("python3 -m unittest -q test_tally", "Running the tests."),
        call("sed -i 's/text.split(\" \")/text.split()/' tally.py", "Fixing the split."),
        call("python3 -m unittest -q test_tally", "Running the tests again."),
        Reply(text=SUMMARY),
    ]


async def record_claude(cli: Path, tmp: Path) -> list[dict[str, Any]]:
    async with MainLoopAnthropic(*_claude_script(tmp / "work")) as up:
        # Permission prompts off, so that the scripted tools run unasked (as root, only in a sandbox).
        async with claude_code.sandbox(tmp, up.url, IS_SANDBOX="1") as box:
            _project(box.work)
            run = await box.run(cli, PROMPT, "--dangerously-skip-permissions", timeout=RUN_TIMEOUT_S)
            if run.returncode != 0:
                raise RuntimeError(run.explain())
        requests = up.requests
    return [_turn(r.path + ("?" + "&".join(f"{k}={v}" for k, v in r.query.items()) if r.query else ""),
                  r.headers, r.json) for r in requests if r.method == "POST"]


async def record_codex(cli: Path, tmp: Path) -> list[dict[str, Any]]:
    work = tmp / "work"
    _project(work)
    async with FakeResponses(*_codex_script()) as up:
        async with codex.sandbox(tmp, up.url, idle_timeout_ms=60000) as (home, work, egress):
            _project(work)
            run = await codex.run_exec(cli, home, PROMPT, egress=egress, cwd=work, timeout=RUN_TIMEOUT_S)
            if run.returncode != 0:
                raise RuntimeError(run.explain())
        requests = up.requests
    return [_turn(r.path, r.headers, r.json) for r in requests if r.method == "POST"]


def _turn(path: str, headers: dict[str, str], body: Any) -> dict[str, Any]:
    return {"path": path, "headers": {k: headers[k] for k in KEPT_HEADERS if k in headers}, "body": body}


def save(name: str, agent: str, version: str, requests: list[dict[str, Any]]) -> Path:
    SESSIONS.mkdir(exist_ok=True)
    path = SESSIONS / f"{name}.json.xz"
    doc = {"agent": agent, "version": version, "prompt": PROMPT, "requests": requests}
    # xz, not gzip: each request repeats the one before it whole, further back than gzip's 32 KB window.
    path.write_bytes(lzma.compress(json.dumps(doc, indent=1, ensure_ascii=False).encode() + b"\n", preset=9))
    return path


async def main() -> None:
    clis = tools.installed()
    pins = {command: version for version, command, _ in tools.PINS.values()}
    with tempfile.TemporaryDirectory(prefix="mlxgw-record-") as tmp:
        claude = await record_claude(clis["claude"], Path(tmp) / "claude")
        print(save("claude_code", "Claude Code", pins["claude"], claude), len(claude), "requests")
    with tempfile.TemporaryDirectory(prefix="mlxgw-record-") as tmp:
        turns = await record_codex(clis["codex"], Path(tmp) / "codex")
        print(save("codex", "Codex", pins["codex"], turns), len(turns), "requests")


if __name__ == "__main__":
    asyncio.run(main())
