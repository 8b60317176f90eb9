"""Records what the pinned Codex CLI sends, into tests/agents/fixtures/; rerun it when the pin changes:

    .venv/bin/python -m tests.agents.record_codex

A small Responses server of its own (not mlxgw, not the fakes) answers each turn with a full,
well-formed event stream, so what Codex sends next is what it sends to OpenAI."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.agents import codex, tools

FIXTURES = Path(__file__).parent / "fixtures"
SECRET_HEADERS = {"authorization"}


def message(text: str) -> dict[str, Any]:
    return {"type": "message", "id": "msg_rec1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def reasoning(summary: str) -> dict[str, Any]:
    # encrypted_content as OpenAI's models send it: opaque; Codex must give it back unchanged.
    return {"type": "reasoning", "id": "rs_rec1", "summary": [{"type": "summary_text", "text": summary}],
            "encrypted_content": "gAAAAABrecorded-opaque-state"}


def function_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function_call", "id": "fc_rec1", "call_id": "call_rec1", "name": name,
            "arguments": json.dumps(arguments), "status": "completed"}


def events(response_id: str, model: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stream the official SDK accumulates into a Response with `items` as its output."""
    base = {"id": response_id, "object": "response", "created_at": int(time.time()), "status": "in_progress",
            "model": model, "output": []}
    out = [{"type": "response.created", "response": base}, {"type": "response.in_progress", "response": base}]
    for i, item in enumerate(items):
        at = {"output_index": i, "item_id": item["id"]}
        if item["type"] == "message":
            out.append({"type": "response.output_item.added", "output_index": i, "item": {**item, "content": [],
                                                                                         "status": "in_progress"}})
            part = item["content"][0]
            out += [{"type": "response.content_part.added", **at, "content_index": 0, "part": {**part, "text": ""}},
                    {"type": "response.output_text.delta", **at, "content_index": 0, "delta": part["text"]},
                    {"type": "response.output_text.done", **at, "content_index": 0, "text": part["text"]},
                    {"type": "response.content_part.done", **at, "content_index": 0, "part": part}]
        elif item["type"] == "function_call":
            out += [{"type": "response.output_item.added", "output_index": i,
                     "item": {**item, "arguments": "", "status": "in_progress"}},
                    {"type": "response.function_call_arguments.delta", **at, "delta": item["arguments"]},
                    {"type": "response.function_call_arguments.done", **at, "arguments": item["arguments"]}]
        else:
            summary = item["summary"][0]
            out += [{"type": "response.output_item.added", "output_index": i, "item": {**item, "summary": []}},
                    {"type": "response.reasoning_summary_part.added", **at, "summary_index": 0,
                     "part": {**summary, "text": ""}},
                    {"type": "response.reasoning_summary_text.delta", **at, "summary_index": 0,
                     "delta": summary["text"]},
                    {"type": "response.reasoning_summary_text.done", **at, "summary_index": 0,
                     "text": summary["text"]},
                    {"type": "response.reasoning_summary_part.done", **at, "summary_index": 0, "part": summary}]
        out.append({"type": "response.output_item.done", "output_index": i, "item": item})
    usage = {"input_tokens": 9000, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 12,
             "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 9012}
    out.append({"type": "response.completed", "response": {**base, "status": "completed", "output": items,
                                                           "usage": usage}})
    return [{**e, "sequence_number": n} for n, e in enumerate(out)]


class Recorder:
    """Answers POST /v1/responses with one scripted output per turn; records every request."""

    def __init__(self, *turns: list[dict[str, Any]]) -> None:
        self.turns = list(turns)
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = {k: ("<redacted>" if k.lower() in SECRET_HEADERS else v) for k, v in request.headers.items()}
        self.requests.append({"method": request.method, "path": request.path_qs, "headers": headers,
                              "body": json.loads(raw) if raw else None})
        if request.method != "POST" or request.path != "/v1/responses" or not self.turns:
            return web.json_response({"error": {"message": "not recorded", "type": "invalid_request_error",
                                                "param": None, "code": None}}, status=404)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        model = json.loads(raw).get("model", "")
        for e in events(f"resp_rec{len(self.requests)}", model, self.turns.pop(0)):
            await resp.write(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode())
        await resp.write_eof()
        return resp


async def capture(cli: Path, prompt: str, *turns: list[dict[str, Any]], model: str = "gpt-test"
                  ) -> list[dict[str, Any]]:
    recorder = Recorder(*turns)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with codex.sandbox(Path(tmp), f"http://127.0.0.1:{port}/v1", model=model) as (home, work, egress):
                run = await codex.run_exec(cli, home, prompt, egress=egress, cwd=work)
        assert run.returncode == 0, run.explain()
    finally:
        await runner.cleanup()
    return recorder.requests


def save(name: str, request: dict[str, Any]) -> None:
    (FIXTURES / name).write_text(json.dumps(request, indent=1, ensure_ascii=False) + "\n")


async def main() -> None:
    cli = tools.installed()["codex"]
    FIXTURES.mkdir(exist_ok=True)
    (hello,) = await capture(cli, "say hi", [message("hi from the recorder")])
    save("codex_turn1.json", hello)
    _, after_tool = await capture(
        cli, "run echo mlxgw-ok",
        [reasoning("Running the command."), function_call("exec_command", {"cmd": "echo mlxgw-ok"})],
        [message("It printed mlxgw-ok.")])
    save("codex_turn2.json", after_tool)
    # A model Codex knows (its bundled metadata) gets the freeform apply_patch tool and an effort.
    (known,) = await capture(cli, "say hi", [message("hi")], model="gpt-5.5")
    save("codex_known_model.json", known)


if __name__ == "__main__":
    asyncio.run(main())
