"""A fake Anthropic Messages upstream speaking the real wire format."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from .script import FakeUpstream, RecordedRequest, Reply, Thinking, _short_id, fake_token_count, split_n

# status -> (type, message) as api.anthropic.com words them
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    502: ("api_error", "Bad gateway"),
    503: ("api_error", "Service unavailable"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class FakeAnthropic(FakeUpstream):
    """`async with FakeAnthropic(Reply(text="hi")) as up:` then `AsyncAnthropic(base_url=up.url)`."""

    protocol = "anthropic"
    default_text = "Hello from fake-anthropic"

    def __init__(self, *replies: Reply, verify_thinking: bool = False, **kwargs: Any) -> None:
        """`verify_thinking`: refuse what Anthropic refuses in the thinking of a conversation sent
        back, in its words: a thinking block whose signature this fake did not mint for that text,
        a tool-calling last assistant turn that does not open with thinking while thinking is on,
        and thinking context edits while it is off."""
        super().__init__(*replies, **kwargs)
        self.verify_thinking = verify_thinking
        self.minted: dict[str, str] = {}  # signature -> the thinking text it was given with

    @property
    def url(self) -> str:  # the anthropic SDK appends /v1 itself
        return self.root

    def default_models(self) -> list[str]:
        return ["claude-sonnet-4-6", "claude-haiku-4-5"]

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._models)

    def id_headers(self, request_id: str) -> dict[str, str]:
        return {"request-id": request_id}

    def key_ok(self, rec: RecordedRequest) -> bool:
        return self.require_key in (rec.headers.get("x-api-key"), rec.bearer)

    def error_body(self, status: int, reply: Reply, request_id: str) -> dict[str, Any]:
        etype, message = _ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", "Error.")
        )
        if reply.prompt_too_long:
            tokens, maximum = reply.prompt_too_long
            message = f"prompt is too long: {tokens} tokens > {maximum} maximum"
        return {
            "type": "error",
            "error": {"type": reply.error_type or etype, "message": reply.error_message or message},
            "request_id": request_id,
        }

    def malformed_frame(self) -> bytes:
        return (
            b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"ty\n\n'
        )

    async def _models(self, request: web.Request) -> web.StreamResponse:
        async def answer(request, rec, reply):
            data = [
                {
                    "type": "model",
                    "id": m,
                    "display_name": m.replace("-", " ").title(),
                    "created_at": "2025-09-29T00:00:00Z",
                }
                for m in self.models
            ]
            body = {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
            return await self._send_json(request, reply, body)

        return await self._serve(request, "models", answer)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        async def answer(request, rec, reply):
            u = reply.usage_obj()
            n = fake_token_count(rec.json) if u.input_tokens is None else u.input_tokens
            return await self._send_json(request, reply, {"input_tokens": n})

        return await self._serve(request, "count_tokens", answer)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, None, self._answer_messages)

    async def _answer_messages(
        self, request: web.Request, rec: RecordedRequest, reply: Reply
    ) -> web.StreamResponse:
        body = rec.json if isinstance(rec.json, dict) else {}
        if self.verify_thinking and (refusal := self._thinking_refusal(body)):
            return self._error_response(Reply(status=400, error_message=refusal), rec)
        model = reply.model or body.get("model") or "claude-sonnet-4-6"
        mid = "msg_" + _short_id()
        texts = reply.text_chunks(self.default_text)
        thinking = reply.thinking_obj()
        thinking_chunks = re.findall(r"\s*\S+\s*|\s+", thinking.text) if thinking else []
        calls = reply.tool_call_list("toolu_")
        fragments = [split_n(c.arguments_json, reply.arg_chunks) for c in calls]
        n_chunks = len(texts) + len(thinking_chunks) + sum(len(f) for f in fragments)
        if reply.finish:
            stop_reason = reply.finish
        elif calls:
            stop_reason = "tool_use"
        elif reply.stop_sequence is not None:
            stop_reason = "stop_sequence"
        else:
            stop_reason = "end_turn"
        u = reply.usage_obj()
        input_tokens = fake_token_count(body) if u.input_tokens is None else u.input_tokens
        output_tokens = max(1, n_chunks) if u.output_tokens is None else u.output_tokens
        usage = {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": u.cache_creation_tokens,
            "cache_read_input_tokens": u.cache_read_tokens,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

        # content blocks in final order: thinking, redacted thinking, text, tool uses
        blocks: list[dict[str, Any]] = []
        if thinking:
            self.minted[thinking.sig] = thinking.text
            blocks.append({"type": "thinking", "thinking": thinking.text, "signature": thinking.sig})
        if reply.redacted_thinking:
            blocks.append({"type": "redacted_thinking", "data": reply.redacted_thinking})
        if texts:
            blocks.append({"type": "text", "text": "".join(texts)})
        for c in calls:
            try:
                tool_input = json.loads(c.arguments_json or "{}")
            except ValueError:  # deliberately broken arguments: only a stream can carry them verbatim
                tool_input = {}
            blocks.append({"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input})

        if not body.get("stream"):
            message = {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": blocks,
                "stop_reason": stop_reason,
                "stop_sequence": reply.stop_sequence,
                "usage": usage,
            }
            return await self._send_json(request, reply, message)

        start_usage = {**usage, "output_tokens": 1}
        frames = [
            _event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": mid,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                },
            ),
            _event("ping", {"type": "ping"}),
        ]
        index = 0

        def block(start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
            nonlocal index
            frames.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            for d in deltas:
                frames.append(
                    _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
                )
            frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1

        if thinking:
            deltas = [{"type": "thinking_delta", "thinking": t} for t in thinking_chunks]
            deltas.append({"type": "signature_delta", "signature": thinking.sig})
            block({"type": "thinking", "thinking": "", "signature": ""}, deltas)
        if reply.redacted_thinking:
            block({"type": "redacted_thinking", "data": reply.redacted_thinking}, [])
        if texts:
            block({"type": "text", "text": ""}, [{"type": "text_delta", "text": t} for t in texts])
        for c, frags in zip(calls, fragments, strict=True):
            block(
                {"type": "tool_use", "id": c.id, "name": c.name, "input": {}},
                [{"type": "input_json_delta", "partial_json": f} for f in frags],
            )
        frames.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": reply.stop_sequence},
                    "usage": {"output_tokens": output_tokens},
                },
            )
        )
        frames.append(_event("message_stop", {"type": "message_stop"}))
        err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return await self._send_sse(request, reply, frames, _event("error", err))

    def _thinking_refusal(self, body: dict[str, Any]) -> str | None:
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        for i, msg in enumerate(messages):
            content = msg.get("content") if isinstance(msg, dict) else None
            for j, block in enumerate(content if isinstance(content, list) else []):
                if isinstance(block, dict) and block.get("type") == "thinking" and not self._minted(block):
                    return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
        thinking = body.get("thinking")
        on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
        assistant = [(i, m) for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"]
        if on and assistant:
            i, last = assistant[-1]
            content = last.get("content") if isinstance(last.get("content"), list) else []
            first = content[0].get("type") if content else None
            if any(b.get("type") == "tool_use" for b in content) and first not in ("thinking", "redacted_thinking"):
                return (
                    f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. "
                    "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                    "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
                    "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult "
                    "our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                )
        edits = (body.get("context_management") or {}).get("edits") or []
        for edit in edits:
            kind = edit.get("type", "") if isinstance(edit, dict) else ""
            if kind.startswith("clear_thinking") and not on:
                return f"`{kind}` strategy requires `thinking` to be enabled"
        return None

    def _minted(self, block: dict[str, Any]) -> bool:
        signature, text = block.get("signature"), block.get("thinking")
        return self.minted.get(signature) == text or signature == Thinking(str(text)).sig
