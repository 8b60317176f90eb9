"""The kinds of cloud backend: one row each, naming the adapter class, the default base URL and the
wire protocol the upstream speaks. Config validation and the registry both read this table, so a
new kind is one row here plus its adapter module. Plain data: the adapter is imported only when a
backend of that kind is built, so the CLI stays light."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str  # the `type` of a [backends.NAME] table
    adapter: str  # "module:Class" of its Backend
    default_base_url: str
    wire: str  # the wire protocol it speaks (a name in mlxgw.wires.WIRES)

    def adapter_class(self) -> type:
        module, _, cls = self.adapter.partition(":")
        return getattr(importlib.import_module(module), cls)


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("openai", "mlxgw.backends.cloud:OpenAIBackend", "https://api.openai.com/v1", "openai"),
        Kind("anthropic", "mlxgw.backends.cloud:AnthropicBackend", "https://api.anthropic.com", "anthropic"),
        # A server that speaks only the Responses API (OpenAI's Responses-only models): Chat
        # Completions and Anthropic clients are translated to it.
        Kind("responses", "mlxgw.backends.cloud:ResponsesBackend", "https://api.openai.com/v1", "responses"),
        # Another mlxgw: every client's request passes through in the client's own protocol.
        Kind("mlxgw", "mlxgw.backends.peer:MlxgwBackend", "http://127.0.0.1:8421", "openai"),
    )
}
