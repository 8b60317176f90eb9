"""A fake vLLM OpenAI-compatible server (`vllm serve MODEL`, http://host:8000/v1).

What sets it apart from api.openai.com, from vLLM's docs and its server's protocol module: it
serves only the models it was started with (their ids are Hugging Face repo ids) and refuses any
other with 404; its /v1/models cards carry `owned_by: "vllm"`, `root` and `max_model_len`; a
stream carries usage only in a last chunk, and only when asked with `stream_options.include_usage`
(the Chat Completions rule, which the OpenAI fake follows too); it needs no key unless started
with `--api-key`; and its errors are flat, not under `error`:
`{"object": "error", "message": …, "type": "BadRequestError", "param": null, "code": 400}`
(an error frame in a stream wraps that object in `{"error": …}`).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web

from .openai_fake import FakeOpenAI
from .script import RecordedRequest, Reply, fake_token_count

MAX_MODEL_LEN = 32768


def _error_type(status: int) -> str:
    """vLLM names an error's type after the HTTP status, as Python exception names: 400 BadRequestError."""
    if status >= 500:
        return "InternalServerError"
    return HTTPStatus(status).phrase.title().replace(" ", "").replace("'", "") + "Error"


class FakeVLLM(FakeOpenAI):
    protocol = "vllm"
    default_text = "Hello from fake-vllm"

    def default_models(self) -> list[str]:
        return ["Qwen/Qwen3-8B"]

    def error_body(self, status: int, reply: Reply, request_id: str) -> dict[str, Any]:
        message = reply.error_message or HTTPStatus(status).phrase
        if reply.prompt_too_long:
            tokens, maximum = reply.prompt_too_long
            message = (
                f"This model's maximum context length is {maximum} tokens. However, you requested {tokens} tokens "
                f"({tokens - 16} in the messages, 16 in the completion). Please reduce the length of the messages or completion."
            )
        return {"object": "error", "message": message, "type": reply.error_type or _error_type(status), "param": None, "code": status}

    def stream_error_body(self) -> dict[str, Any]:
        return {"error": self.error_body(500, Reply(status=500, error_message="engine step failed"), "")}

    async def _models(self, request: web.Request) -> web.StreamResponse:
        async def answer(request, rec, reply):
            cards = [
                {"id": m, "object": "model", "created": 1715367049, "owned_by": "vllm", "root": m, "parent": None,
                 "max_model_len": MAX_MODEL_LEN, "permission": [{"id": "modelperm-fake", "object": "model_permission"}]}
                for m in self.models
            ]
            return await self._send_json(request, reply, {"object": "list", "data": cards})

        return await self._serve(request, "models", answer)

    async def _answer_chat(self, request: web.Request, rec: RecordedRequest, reply: Reply) -> web.StreamResponse:
        body = rec.json if isinstance(rec.json, dict) else {}
        model = body.get("model")
        if model not in self.models:
            return self._error_response(Reply(status=404, error_message=f"The model `{model}` does not exist."), rec)
        if fake_token_count(body) + int(body.get("max_tokens") or 16) > MAX_MODEL_LEN:
            return self._error_response(Reply(prompt_too_long=(fake_token_count(body), MAX_MODEL_LEN)), rec)
        return await super()._answer_chat(request, rec, reply)
