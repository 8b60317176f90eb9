"""A fake OpenAI Responses upstream (`POST /v1/responses`) speaking the real wire format.

Scripted with the same `Reply`s as the other fakes. Responses specifics: a `ToolCall` with
`kind="custom"` is a freeform tool's call (its `arguments` string is the raw `input`), one with a
`namespace` names its namespace; a reply's `thinking` is a reasoning item whose summary is its text
and whose `encrypted_content` is its `sig`; `finish="max_output_tokens"` or `"content_filter"`
makes the response `incomplete` for that reason.

`FakeResponses(chat=True)` also answers Chat Completions, as api.openai.com does; by default it
answers only the Responses API, as a server of Responses-only models would look to mlxgw.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from aiohttp import web

from .openai_fake import FakeOpenAI
from .script import RecordedRequest, Reply, _short_id, fake_token_count, split_n

CONTEXT_WINDOW_MESSAGE = "Your input exceeds the context window of this model. Please adjust your input and try again."


def responses_token_count(body: Any) -> int:
    """`fake_token_count` of what a Responses body holds instead of system and messages."""
    if not isinstance(body, dict):
        return 1
    return fake_token_count({"system": body.get("instructions"), "messages": body.get("input"), "tools": body.get("tools")})


class FakeResponses(FakeOpenAI):
    """`async with FakeResponses(Reply(text="hi")) as up:` then `AsyncOpenAI(base_url=up.url).responses`."""

    protocol = "responses"
    default_text = "Hello from fake-responses"

    def __init__(self, *replies: Reply, chat: bool = False, **kwargs: Any) -> None:
        super().__init__(*replies, **kwargs)
        self.chat = chat

    def default_models(self) -> list[str]:
        return ["gpt-5", "gpt-5-pro"]

    def add_routes(self, app: web.Application) -> None:
        if self.chat:
            super().add_routes(app)
        else:
            app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/responses/input_tokens", self._input_tokens)

    def error_body(self, status: int, reply: Reply, request_id: str) -> dict[str, Any]:
        body = super().error_body(status, reply, request_id)
        if reply.prompt_too_long:
            body["error"].update(message=reply.error_message or CONTEXT_WINDOW_MESSAGE, param="input")
        return body

    def malformed_frame(self) -> bytes:
        return b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "delta": "oo\n\n'

    async def _input_tokens(self, request: web.Request) -> web.StreamResponse:
        async def answer(request, rec, reply):
            u = reply.usage_obj()
            n = responses_token_count(rec.json) if u.input_tokens is None else u.input_tokens
            return await self._send_json(request, reply, {"object": "response.input_tokens", "input_tokens": n})

        return await self._serve(request, "count_tokens", answer)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, None, self._answer)

    async def _answer(self, request: web.Request, rec: RecordedRequest, reply: Reply) -> web.StreamResponse:
        body = rec.json if isinstance(rec.json, dict) else {}
        model = reply.model or body.get("model") or "gpt-5"
        texts = reply.text_chunks(self.default_text)
        thinking = reply.thinking_obj()
        reasoning = re.findall(r"\s*\S+\s*|\s+", thinking.text) if thinking else []
        calls = reply.tool_call_list("call_")
        fragments = [split_n(c.arguments_json, reply.arg_chunks) for c in calls]
        n_chunks = len(texts) + len(reasoning) + sum(len(f) for f in fragments)
        incomplete = reply.finish if reply.finish in ("max_output_tokens", "content_filter") else None

        # The output items, whole, in order: reasoning, the message, the calls; each with its stream pieces.
        items: list[dict[str, Any]] = []
        pieces: list[list[str]] = []
        if thinking:
            summary = [{"type": "summary_text", "text": thinking.text}] if thinking.text else []
            items.append({"id": "rs_" + _short_id(), "type": "reasoning", "summary": summary, "encrypted_content": thinking.sig})
            pieces.append(reasoning)
        if texts:
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": "".join(texts)}
            items.append({"id": "msg_" + _short_id(), "type": "message", "status": "completed", "content": [part], "role": "assistant"})
            pieces.append(texts)
        for c, frags in zip(calls, fragments, strict=True):
            if c.kind == "custom":
                item = {"id": "ctc_" + _short_id(), "type": "custom_tool_call", "status": "completed", "call_id": c.id, "input": c.arguments_json, "name": c.name}
            else:
                item = {"id": "fc_" + _short_id(), "type": "function_call", "status": "completed", "arguments": c.arguments_json, "call_id": c.id, "name": c.name}
            if c.namespace:
                item["namespace"] = c.namespace
            items.append(item)
            pieces.append(frags)

        response = self._response(body, model, reply)
        done = {
            **response,
            "status": "incomplete" if incomplete else "completed",
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "output": items,
            "usage": self._responses_usage(reply, body, n_chunks, len(reasoning)),
        }
        if not body.get("stream"):
            return await self._send_json(request, reply, done)

        seq = 0

        def event(name: str, **data: Any) -> bytes:
            nonlocal seq
            payload = {"type": name, "sequence_number": seq, **data}
            seq += 1
            return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()

        frames = [event("response.created", response=response), event("response.in_progress", response=response)]
        for index, (item, chunks) in enumerate(zip(items, pieces, strict=True)):
            frames += self._item_frames(event, index, item, chunks)
        frames.append(event("response.incomplete" if incomplete else "response.completed", response=done))
        err = event("error", code="server_error", message="The server had an error while processing your request.", param=None)
        return await self._send_sse(request, reply, frames, err)

    @staticmethod
    def _item_frames(event, index: int, item: dict[str, Any], chunks: list[str]) -> list[bytes]:
        """One output item's events, as OpenAI streams them: added, its parts and deltas, done."""
        at = {"item_id": item["id"], "output_index": index}
        kind = item["type"]
        if kind == "reasoning":
            frames = [event("response.output_item.added", output_index=index, item={"id": item["id"], "type": "reasoning", "summary": []})]
            if item["summary"]:
                text = item["summary"][0]["text"]
                empty = {"type": "summary_text", "text": ""}
                frames.append(event("response.reasoning_summary_part.added", **at, summary_index=0, part=empty))
                frames += [event("response.reasoning_summary_text.delta", **at, summary_index=0, delta=d) for d in chunks]
                frames.append(event("response.reasoning_summary_text.done", **at, summary_index=0, text=text))
                frames.append(event("response.reasoning_summary_part.done", **at, summary_index=0, part={**empty, "text": text}))
        elif kind == "message":
            part = item["content"][0]
            frames = [event("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []})]
            frames.append(event("response.content_part.added", **at, content_index=0, part={**part, "text": ""}))
            frames += [event("response.output_text.delta", **at, content_index=0, delta=d, logprobs=[]) for d in chunks]
            frames.append(event("response.output_text.done", **at, content_index=0, text=part["text"], logprobs=[]))
            frames.append(event("response.content_part.done", **at, content_index=0, part=part))
        else:
            custom = kind == "custom_tool_call"
            field, name = ("input", "response.custom_tool_call_input") if custom else ("arguments", "response.function_call_arguments")
            frames = [event("response.output_item.added", output_index=index, item={**item, "status": "in_progress", field: ""})]
            frames += [event(f"{name}.delta", **at, delta=f) for f in chunks if f]
            frames.append(event(f"{name}.done", **at, **{field: item[field]}))
        frames.append(event("response.output_item.done", output_index=index, item=item))
        return frames

    @staticmethod
    def _response(body: dict[str, Any], model: str, reply: Reply) -> dict[str, Any]:
        """The response object as `response.created` shows it: in progress, nothing output yet."""
        return {
            "id": "resp_" + _short_id(),
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": model,
            "output": [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": None,
            "metadata": body.get("metadata") or {},
        }

    @staticmethod
    def _responses_usage(reply: Reply, body: dict[str, Any], n_chunks: int, reasoning_chunks: int) -> dict[str, Any]:
        u = reply.usage_obj()
        uncached = responses_token_count(body) if u.input_tokens is None else u.input_tokens
        total_in = uncached + u.cache_read_tokens + u.cache_creation_tokens
        output = max(1, n_chunks) if u.output_tokens is None else u.output_tokens
        return {
            "input_tokens": total_in,
            "input_tokens_details": {"cached_tokens": u.cache_read_tokens, "cache_write_tokens": u.cache_creation_tokens},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning_chunks},
            "total_tokens": total_in + output,
        }
