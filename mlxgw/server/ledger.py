"""What the request log keeps of one request, filled in as it is answered."""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from mlxgw import pricing
from mlxgw.backends.base import Item, RawFrame
from mlxgw.canonical import Start, Usage, merge_usage
from mlxgw.dispatch.dispatcher import AttemptRecord
from mlxgw.errors import GatewayError
from mlxgw.server.middleware import CLIENT_KEY, request_id
from mlxgw.settings import LOCAL, PriceRule

log = logging.getLogger("mlxgw.server")


class Ledger:
    """One request's row of the request log."""

    def __init__(self, request: web.Request, protocol: str, prices: tuple[PriceRule, ...]) -> None:
        self.request = request
        self.protocol = protocol
        self.prices = prices  # [pricing], for the row's cost
        self.started = time.monotonic()
        self.first_byte: float | None = None
        self.model = ""
        self.stream = False
        self.attempts: list[AttemptRecord] = []
        self.usage = Usage()
        self.status = 200
        self.error_kind: str | None = None
        self.client_key: str | None = request.get(CLIENT_KEY)

    def observe(self, item: Item) -> None:
        for ev in item.events if isinstance(item, RawFrame) else (item,):
            if isinstance(ev, Start):
                # A stream's start carries the prompt's size, its cache reads and writes apart (Anthropic).
                merge_usage(self.usage, Usage(ev.input_tokens, None, ev.cache_read_tokens, ev.cache_write_tokens))
            elif isinstance(ev, Usage):
                merge_usage(self.usage, ev)

    def sent_first_byte(self) -> None:
        if self.first_byte is None:
            self.first_byte = time.monotonic()

    def failed(self, err: GatewayError, *, before_first_byte: bool) -> None:
        self.error_kind = err.code or err.kind
        if before_first_byte:
            self.status = err.status

    def row(self) -> dict:
        served = next((a for a in reversed(self.attempts) if a.error is None), None)
        ms = 1000.0
        cost = self.cost_usd(served)
        ttft_ms = round((self.first_byte - self.started) * ms, 2) if self.first_byte else None
        return {
            "request_id": request_id(self.request),
            "protocol": self.protocol,
            "requested_model": self.model,
            "backend": served.backend if served else None,
            "model": served.model if served else None,
            "attempts": json.dumps([a.as_json() for a in self.attempts]),
            "fallbacks": max(0, len(self.attempts) - 1),
            "status": self.status,
            "stream": self.stream,
            "latency_ms": round((time.monotonic() - self.started) * ms, 2),
            "ttft_ms": ttft_ms,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cached_tokens": self.usage.cache_read_tokens,
            "cache_write_tokens": self.usage.cache_write_tokens,
            "prefill_ms": self.prefill_ms(served, ttft_ms),
            "error_kind": self.error_kind,
            "client_key": self.client_key,
            "cost_usd": cost,
            "sticky": bool(served and served.sticky),
        }

    def prefill_ms(self, served: AttemptRecord | None, ttft_ms: float | None) -> float | None:
        """The local worker's own prefill time, else (an answer cut short) the time to first byte;
        None for a cloud answer, whose prefill cannot be told apart from the network."""
        if served is None or served.backend != LOCAL:
            return None
        return self.usage.prefill_ms if self.usage.prefill_ms is not None else ttft_ms

    def cost_usd(self, served: AttemptRecord | None) -> float | None:
        """What the answer cost at [pricing]'s prices (0 locally); None when its price or its usage is unknown."""
        if served is None:
            return None
        where = (served.backend, served.model)
        if served.backend != LOCAL and where not in _unpriced and pricing.price_for(*where, self.prices) is None:
            _unpriced.add(where)
            log.warning(
                "no price for %s:%s: its requests are logged without a cost and count $0 toward budgets; "
                "add it under [pricing]", *where,
            )
        return pricing.cost_usd(served.backend, served.model, self.usage, self.prices)


_unpriced: set[tuple[str, str]] = set()  # warned once per daemon
