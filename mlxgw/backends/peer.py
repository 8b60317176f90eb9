"""Another mlxgw as a backend (`type = "mlxgw"`): a gateway on another machine, e.g. a Mac serving
local models to a team's gateway.

It speaks every protocol mlxgw's clients do, so each request passes through in the client's own
protocol, both ways: an Anthropic client's thinking signatures and `cache_control`, an OpenAI
client's `stream_options` and unknown fields reach the other gateway as sent (only the model
changes), and the bytes of its answer come back unchanged. Its client key is the credential
(`mlxgw creds set NAME --type mlxgw`), sent as `Authorization: Bearer`, which it accepts on
every path.
"""

from __future__ import annotations

import contextvars

from mlxgw.backends.cloud import BASE_HEADERS, AnthropicBackend, OpenAIBackend
from mlxgw.canonical import ChatRequest
from mlxgw.wires import anthropic, openai, responses
from mlxgw.wires.base import UpstreamWire

# How many mlxgw gateways the request in progress came through (the server reads the header into
# HOPS): each hop adds one, and a gateway refuses a request past MAX_HOPS, so a base_url that leads
# back to a gateway on the path fails at once instead of looping until the request deadline.
HOPS_HEADER = "x-mlxgw-hops"
MAX_HOPS = 5
HOPS: contextvars.ContextVar[int] = contextvars.ContextVar("mlxgw_hops", default=0)


class MlxgwBackend(OpenAIBackend):
    kind = "mlxgw"
    wire = openai  # what a request without the client's own body (none today) is translated to
    chat_path = "/v1/chat/completions"
    models_path = "/v1/models"

    def _url(self, path: str) -> str:
        # base_url is the gateway's address, as Anthropic clients take it; the OpenAI clients' form
        # with /v1 names the same gateway.
        return self.upstream.settings.base_url.removesuffix("/v1") + path

    def speaks(self) -> list[tuple[UpstreamWire, str]]:
        return [(openai, self.chat_path), (anthropic, AnthropicBackend.chat_path), (responses, "/v1/responses")]

    def headers(self, request: ChatRequest, passthrough: bool) -> dict[str, str]:
        headers = dict(BASE_HEADERS)
        wire, _, _ = self._route(request)
        if passthrough and wire is anthropic:
            headers.update({k: v for k, v in request.client_headers.items() if k in anthropic.FORWARDED_HEADERS})
        elif passthrough:
            headers.update(request.client_headers)
        if wire is anthropic:
            headers.setdefault("anthropic-version", self.anthropic_version)
        headers[HOPS_HEADER] = str(HOPS.get() + 1)
        key = self.upstream.key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    async def count_tokens(self, request: ChatRequest, model: str) -> int:
        """Counted by the other gateway where its protocol can (Anthropic's count_tokens, the
        Responses API's input_tokens); a Chat Completions request is estimated."""
        wire, _, _ = self._route(request)
        if wire is anthropic:
            return await AnthropicBackend.count_tokens(self, request, model)
        return await super().count_tokens(request, model)
