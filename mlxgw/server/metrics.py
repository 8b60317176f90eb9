"""The gateway's Prometheus metrics: what each request moved, and what a scrape reads.

Counters and histograms live in a registry of the app's own (never prometheus-client's global one,
so several apps in one process keep apart), moved once per request when it ends, from its ledger.
Breakers and the local worker are read at scrape time (`Snapshot`), as they are then.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from mlxgw import __version__
from mlxgw.server.ledger import Ledger
from mlxgw.settings import LOCAL

# LLM answers take from milliseconds (a cached refusal) to minutes (a long local generation).
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
BREAKER_STATES = ("closed", "half_open", "open")
# Served model names can come from clients (wildcard mappings pass them on): beyond this many
# distinct label sets, new ones are counted under "(other)" so memory stays bounded.
MAX_SERIES = 1000
OTHER = "(other)"


class Metrics:
    """The app's Prometheus registry, and the one call each request makes when it ends."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self._requests = Counter(
            "mlxgw_requests", "Client requests by client protocol, serving backend and model, HTTP status class "
            "and error (empty when none).", ("protocol", "backend", "model", "status", "error"), registry=r)
        self._duration = Histogram(
            "mlxgw_request_duration_seconds", "Time from a request's arrival to the end of its answer.",
            ("backend", "model"), buckets=DURATION_BUCKETS, registry=r)
        self._ttft = Histogram(
            "mlxgw_time_to_first_token_seconds", "Time from a streamed request's arrival to its first byte of answer.",
            ("backend", "model"), buckets=TTFT_BUCKETS, registry=r)
        self._tokens = Counter(
            "mlxgw_tokens", "Tokens by serving backend and model; type is input, output, cached (read from the "
            "prompt cache) or cache_write.", ("backend", "model", "type"), registry=r)
        self._attempts = Counter(
            "mlxgw_attempts", "Attempts of the dispatcher's chains by backend and model; outcome is ok or the "
            "error that moved the request on (or ended it).", ("backend", "model", "outcome"), registry=r)
        self._retries = Counter(
            "mlxgw_retries", "Tries of an attempt beyond its first.", ("backend",), registry=r)
        self._fallbacks = Counter(
            "mlxgw_fallbacks", "Requests that moved on from this backend to the next attempt of their chain.",
            ("backend",), registry=r)
        # Label sets → children, so that a request moves counters without building labels each time.
        self._served: dict[tuple, tuple] = {}
        self._outcomes: dict[tuple, Any] = {}

    def observe(self, ledger: Ledger) -> None:
        """Count one request that has ended."""
        duration = time.monotonic() - ledger.started
        served = next((a for a in reversed(ledger.attempts) if a.error is None), None)
        backend, model = (served.backend, served.model) if served else ("", "")
        key = (ledger.protocol, backend, model, ledger.status, ledger.error_kind or "")
        children = self._served.get(key) or self._children(key)
        requests, duration_h, ttft_h, input_c, output_c, cached_c, write_c = children
        requests.inc()
        duration_h.observe(duration)
        if ledger.stream and ledger.first_byte is not None:
            ttft_h.observe(ledger.first_byte - ledger.started)
        usage = ledger.usage
        if usage.input_tokens:
            input_c.inc(usage.input_tokens)
        if usage.output_tokens:
            output_c.inc(usage.output_tokens)
        if usage.cache_read_tokens:
            cached_c.inc(usage.cache_read_tokens)
        if usage.cache_write_tokens:
            write_c.inc(usage.cache_write_tokens)
        last = len(ledger.attempts) - 1
        for i, attempt in enumerate(ledger.attempts):
            outcome = (attempt.backend, attempt.model, attempt.error or "ok")
            attempts = self._outcomes.get(outcome) or self._outcome(outcome)
            attempts.inc()
            if attempt.tries > 1:
                self._retries.labels(attempt.backend).inc(attempt.tries - 1)
            if i < last:
                self._fallbacks.labels(attempt.backend).inc()

    def _children(self, key: tuple) -> tuple:
        protocol, backend, model, status, error = key
        if len(self._served) >= MAX_SERIES:
            model = OTHER
        series = (
            self._requests.labels(protocol, backend, model, f"{status // 100}xx", error),
            self._duration.labels(backend, model),
            self._ttft.labels(backend, model),
            *(self._tokens.labels(backend, model, kind) for kind in ("input", "output", "cached", "cache_write")),
        )
        if len(self._served) < MAX_SERIES:
            self._served[key] = series
        return series

    def _outcome(self, key: tuple) -> Any:
        backend, model, outcome = key
        if len(self._outcomes) >= MAX_SERIES:
            return self._attempts.labels(backend, OTHER, outcome)
        child = self._outcomes[key] = self._attempts.labels(backend, model, outcome)
        return child


class Snapshot:
    """What one scrape shows (a collector for prometheus-client's encoders): the registry's counters
    and histograms, and the families read now, the breakers and the local worker's status."""

    def __init__(
        self, registry: CollectorRegistry, configured: list[str], breakers: dict[str, dict], local: dict | None
    ) -> None:
        self.registry = registry
        self.configured = configured
        self.breakers = breakers
        self.local = local

    def collect(self):
        for family in self.registry.collect():
            # The `_created` timestamps would double the text format's series for nothing a query uses.
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family
        info = GaugeMetricFamily("mlxgw_info", "The gateway's version.", labels=("version",))
        info.add_metric((__version__,), 1)
        yield info
        yield from self._breakers()
        if self.local is not None:
            yield from _local_families(self.local)

    def _breakers(self):
        state = GaugeMetricFamily(
            "mlxgw_breaker_state", "Circuit breaker state per backend (and per local model): 1 for the state it is "
            "in, 0 for the others.", labels=("backend", "model", "state"))
        failures = GaugeMetricFamily(
            "mlxgw_breaker_consecutive_failures", "Failures in a row that the breaker has counted.",
            labels=("backend", "model"))
        # Every configured backend has a breaker, used or not; local ones exist per model once tried.
        entries = {name: {"state": "closed", "consecutive_failures": 0} for name in self.configured if name != LOCAL}
        entries.update(self.breakers)
        for key, entry in sorted(entries.items()):
            backend, _, model = key.partition(":") if key.startswith(f"{LOCAL}:") else (key, "", "")
            for name in BREAKER_STATES:
                state.add_metric((backend, model, name), 1 if entry["state"] == name else 0)
            failures.add_metric((backend, model), entry.get("consecutive_failures", 0))
        yield state
        yield failures


def _gauge(name: str, doc: str, value: float | None, labels: tuple = (), rows=()) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    if value is not None:
        family.add_metric((), value)
    for label_values, v in rows:
        family.add_metric(label_values, v)
    return family


def _local_families(status: dict):
    """The local worker's figures from its status (keys it lacks are left out, never guessed)."""
    running = bool(status.get("running"))
    yield _gauge("mlxgw_local_worker_running", "Whether the local MLX worker process is running (1) or not (0).",
                 1 if running else 0)
    restarts = CounterMetricFamily("mlxgw_local_worker_restarts", "Times the local worker was started again after "
                                   "it exited.", value=status.get("restarts", 0))
    yield restarts
    models = (status.get("models") or []) if running else []
    yield _gauge("mlxgw_local_models_loaded", "Models loaded in the local worker.", len(models))
    yield _gauge("mlxgw_local_model_memory_bytes", "Memory of each loaded local model's weights.", None,
                 ("model",), [((m.get("name", ""),), m.get("memory_bytes", 0)) for m in models])
    if not running:
        return
    memory = status.get("memory") or {}
    yield _gauge("mlxgw_local_memory_bytes", "MLX memory in the worker: active, peak and cache.", None, ("kind",),
                 [((kind,), memory[f"{kind}_bytes"]) for kind in ("active", "peak", "cache") if f"{kind}_bytes" in memory])
    if "pending" in status:
        yield _gauge("mlxgw_local_queue_depth", "Requests waiting for a place in the batch.", status["pending"])
    if "active_sequences" in status:
        yield _gauge("mlxgw_local_batch_size", "Sequences being generated together now.", status["active_sequences"])
    batch = status.get("batch") or {}
    if "max_batch_size" in batch:
        yield _gauge("mlxgw_local_max_batch_size", "The most sequences decoded together in one step since the "
                     "worker started.", batch["max_batch_size"])
    for field, name, doc in (
        ("prompt_tokens", "mlxgw_local_prompt_tokens", "Prompt tokens the worker was asked to process."),
        ("cached_prompt_tokens", "mlxgw_local_prompt_tokens_cached", "Prompt tokens served from the prefix cache."),
        ("generated_tokens", "mlxgw_local_generated_tokens", "Tokens the worker generated."),
    ):
        if field in batch:
            yield CounterMetricFamily(name, doc, value=batch[field])
    cache = status.get("prompt_cache") or {}
    if "lookups" in cache:
        lookups = cache["lookups"]
        hits = cache.get("hits", 0) + cache.get("disk_hits", 0)
        yield CounterMetricFamily("mlxgw_local_prefix_cache_lookups", "Prompts looked up in the prefix cache.",
                                  value=lookups)
        family = CounterMetricFamily("mlxgw_local_prefix_cache_hits", "Prompts served in part from the prefix "
                                     "cache, by where the cache was found.", labels=("tier",))
        family.add_metric(("memory",), cache.get("hits", 0))
        family.add_metric(("disk",), cache.get("disk_hits", 0))
        yield family
        yield _gauge("mlxgw_local_prefix_cache_hit_ratio", "Share of prefix-cache lookups that hit (memory or "
                     "disk) since the worker started.", hits / lookups if lookups else 0.0)
