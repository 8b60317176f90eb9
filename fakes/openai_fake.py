"""A fake OpenAI Chat Completions upstream speaking the real wire format."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from aiohttp import web

from .script import FakeUpstream, RecordedRequest, Reply, _short_id, fake_token_count, split_n

# status -> (type, code, message) as api.openai.com words them
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    413: ("invalid_request_error", None, "Request too large."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    529: ("server_error", None, "The server is overloaded."),
}


class FakeOpenAI(FakeUpstream):
    """`async with FakeOpenAI(Reply(text="hi")) as up:` then `AsyncOpenAI(base_url=up.url)`."""

    protocol = "openai"
    default_text = "Hello from fake-openai"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def default_models(self) -> list[str]:
        return ["gpt-4o", "gpt-4o-mini"]

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)

    def id_headers(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": request_id}

    def key_ok(self, rec: RecordedRequest) -> bool:
        return rec.bearer == self.require_key

    def error_body(self, status: int, reply: Reply, request_id: str) -> dict[str, Any]:
        etype, code, message = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
        )
        param = reply.error_param
        if reply.prompt_too_long:
            tokens, maximum = reply.prompt_too_long
            code, param = "context_length_exceeded", "messages"
            message = (
                f"This model's maximum context length is {maximum} tokens. However, your messages resulted "
                f"in {tokens} tokens. Please reduce the length of the messages."
            )
        return {
            "error": {
                "message": reply.error_message or message,
                "type": reply.error_type or etype,
                "param": param,
                "code": reply.error_code or code,
            }
        }

    def malformed_frame(self) -> bytes:
        return b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": "oops\n\n'

    async def _models(self, request: web.Request) -> web.StreamResponse:
        async def answer(request, rec, reply):
            data = [
                {"id": m, "object": "model", "created": 1715367049, "owned_by": "system"} for m in self.models
            ]
            return await self._send_json(request, reply, {"object": "list", "data": data})

        return await self._serve(request, "models", answer)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, None, self._answer_chat)

    async def _answer_chat(
        self, request: web.Request, rec: RecordedRequest, reply: Reply
    ) -> web.StreamResponse:
        body = rec.json if isinstance(rec.json, dict) else {}
        model = reply.model or body.get("model") or "gpt-4o"
        cid = "chatcmpl-" + _short_id()
        created = int(time.time())
        texts = reply.text_chunks(self.default_text)
        thinking = reply.thinking_obj()
        reasoning = re.findall(r"\s*\S+\s*|\s+", thinking.text) if thinking else []
        calls = reply.tool_call_list("call_")
        fragments = [split_n(c.arguments_json, reply.arg_chunks) or [""] for c in calls]
        n_chunks = len(texts) + len(reasoning) + sum(len(f) for f in fragments)
        finish = reply.finish or ("tool_calls" if calls else "stop")
        usage = self._usage(reply, body, n_chunks)

        if not body.get("stream"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(texts) if texts or not calls else None,
                "refusal": None,
                "annotations": [],
            }
            if thinking:
                message["reasoning_content"] = thinking.text
            if calls:
                message["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments_json},
                    }
                    for c in calls
                ]
            completion = {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
            }
            return await self._send_json(request, reply, completion)

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            c: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                c["usage"] = None
            return b"data: " + json.dumps(c).encode() + b"\n\n"

        frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
        frames += [chunk({"reasoning_content": r}) for r in reasoning]
        frames += [chunk({"content": t}) for t in texts]
        frames += [chunk({"tool_calls": [d]}) for d in self._tool_deltas(calls, fragments, reply.interleave)]
        frames.append(chunk({}, finish))
        if include_usage:
            tail = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": usage,
            }
            frames.append(b"data: " + json.dumps(tail).encode() + b"\n\n")
        frames.append(b"data: [DONE]\n\n")
        err = self.stream_error_body()
        return await self._send_sse(request, reply, frames, b"data: " + json.dumps(err).encode() + b"\n\n")

    def stream_error_body(self) -> dict[str, Any]:
        """The JSON of an error frame in a stream."""
        return {"error": self.error_body(500, Reply(status=500), "")["error"]}

    @staticmethod
    def _tool_deltas(calls, fragments, interleave: bool) -> list[dict[str, Any]]:
        """The first delta of call i carries index/id/type/name; later ones only argument pieces."""
        per_call: list[list[dict[str, Any]]] = []
        for i, (c, frags) in enumerate(zip(calls, fragments, strict=True)):
            deltas = [
                {"index": i, "id": c.id, "type": "function", "function": {"name": c.name, "arguments": ""}}
            ]
            deltas += [{"index": i, "function": {"arguments": f}} for f in frags if f]
            per_call.append(deltas)
        if not interleave:
            return [d for deltas in per_call for d in deltas]
        out = []
        for step in range(max((len(d) for d in per_call), default=0)):
            out += [deltas[step] for deltas in per_call if step < len(deltas)]
        return out

    @staticmethod
    def _usage(reply: Reply, body: dict[str, Any], n_chunks: int) -> dict[str, Any]:
        u = reply.usage_obj()
        uncached = fake_token_count(body) if u.input_tokens is None else u.input_tokens
        prompt = uncached + u.cache_read_tokens + u.cache_creation_tokens
        completion = max(1, n_chunks) if u.output_tokens is None else u.output_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
