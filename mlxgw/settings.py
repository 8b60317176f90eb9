"""The settings every layer reads: frozen values, built from the TOML config by `mlxgw.config`.

Each default is written here once; the config's commented template shows the same values.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

LOCAL = "local"  # the built-in MLX backend's name
MAX_CHAIN = 8  # attempts in one mapping's chain, its primary included
WILDCARDS = "*?["
MAX_TOKENS_FIELDS = ("max_completion_tokens", "max_tokens")
BALANCES = ("least_outstanding", "round_robin")  # how a mapping spread over backends picks the first
# What, besides a backend failing, moves a request on to the next attempt (a mapping's fallback_on).
FALLBACK_REASONS = ("context_length", "bad_output")


def is_pattern(name: str) -> bool:
    """Whether a mapping pattern has fnmatch wildcards (else it is one exact model name)."""
    return any(ch in name for ch in WILDCARDS)


@dataclass(frozen=True)
class Policy:
    """Timeouts, retries and breaker settings of one backend."""

    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float = 120.0
    idle_timeout_s: float = 120.0
    # A non-streamed answer arrives whole, only once it is fully generated: the longest that may take
    # before the backend counts as hung and the chain moves on (never a second generation there).
    answer_timeout_s: float = 300.0
    max_tries: int = 2
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0


POLICY_KEYS = {f.name: f.type for f in fields(Policy)}


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8421
    request_deadline_s: float = 600.0
    keepalive_s: float = 10.0  # 0: no keep-alives
    max_request_mb: float = 32.0
    anthropic_version: str = "2023-06-01"
    allowed_origins: tuple[str, ...] = ()  # normalised: scheme://host[:port], as browsers send Origin
    allowed_hosts: tuple[str, ...] = ()  # lower-case names or IP literals; "*.example.com" for subdomains
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    request_log_days: float = 30.0  # 0: keep every request
    responses_days: float = 30.0  # stored Responses answers (previous_response_id); 0: keep them all
    # /metrics follows the client keys like /v1; true lets a scraper on this machine in without one.
    metrics_open_on_loopback: bool = False
    # This gateway's name in the request log, where replicas share one store; "": HOSTNAME:PORT.
    replica: str = ""
    # `serve --insecure`, never read from the file: serve network callers while no client key exists.
    insecure: bool = False

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def replica_name(self) -> str:
        return self.replica or f"{socket.gethostname()}:{self.port}"

    @property
    def needs_keys(self) -> bool:
        """Whether the daemon refuses /v1 requests while no client key exists."""
        return not (self.loopback or self.insecure)


SERVER_FILE_KEYS = {f.name for f in fields(ServerSettings)} - {"insecure"}


def is_loopback(host: str) -> bool:
    """Whether an address (or name) to bind reaches this machine only."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class StoreSettings:
    # None: the SQLite file in the home. "postgresql://USER@HOST:PORT/DB": one store that gateway
    # replicas share (its password from PGPASSWORD or ~/.pgpass, never the config).
    url: str | None = None


@dataclass(frozen=True)
class LocalSettings:
    """The MLX worker's settings ([local]); every one applies to a running worker."""

    max_loaded_models: int = 2  # least recently used models are unloaded beyond this
    idle_unload_s: float = 900.0  # 0: keep models loaded
    memory_limit_gb: float | None = None  # MLX's memory limit in the worker; None: MLX's default
    prompt_cache_gb: float = 1.0  # KV caches kept in memory for reuse, per loaded model
    disk_cache_gb: float = 10.0  # long prompts' KV caches kept in <home>/cache across restarts; 0: none
    # The output limit of a request that sets none: a model that never stops does not run for minutes.
    default_max_tokens: int = 4096
    # Prompt tokens computed per step: a long prompt reports progress, can be cancelled and leaves
    # its cache behind at this granularity (mlx-lm's default).
    prefill_step_size: int = 2048
    # first_byte_timeout_s is the longest the worker may stay silent on a request, before its first
    # event and between two. A model load is silent: it must cover the largest model's load; long
    # prompts report progress, so they need not fit in it.
    policy: Policy = field(default_factory=Policy)


LOCAL_FILE_KEYS = {
    "max_loaded_models": int,
    "idle_unload_s": float,
    "memory_limit_gb": float,
    "prompt_cache_gb": float,
    "disk_cache_gb": float,
    "default_max_tokens": int,
}  # and the policy keys


@dataclass(frozen=True)
class BackendSettings:
    name: str
    type: str
    base_url: str
    api_key_env: str | None = None
    policy: Policy = field(default_factory=Policy)
    max_output_tokens: int | None = None  # a ceiling for every request's output limit
    max_tokens_field: str = "max_tokens"  # openai type: the output limit's field in translated requests
    responses: bool = False  # openai type: it also serves the Responses API (Responses clients pass through)


def default_responses(base_url: str) -> bool:
    """OpenAI itself serves the Responses API beside Chat Completions; OpenAI-compatible servers
    mostly do not (or not fully), so Responses clients are translated to Chat Completions for them."""
    return (urlsplit(base_url).hostname or "") == "api.openai.com"


def default_max_tokens_field(base_url: str) -> str:
    """OpenAI itself and Azure OpenAI refuse `max_tokens` for their reasoning models; every other
    OpenAI-compatible server knows `max_tokens`, and older ones (llama.cpp before 2026,
    llama-cpp-python, llamafile) silently ignore `max_completion_tokens`."""
    host = urlsplit(base_url).hostname or ""
    return "max_completion_tokens" if host == "api.openai.com" or host.endswith(".openai.azure.com") else "max_tokens"


@dataclass(frozen=True)
class Target:
    """One attempt of a chain: a backend and the model to ask it for (None: the requested name)."""

    backend: str
    model: str | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        backend, sep, model = text.partition(":")
        if not backend or (sep and not model):
            raise ValueError(f"bad fallback {text!r}: expected BACKEND or BACKEND:MODEL")
        return cls(backend, model or None)

    def __str__(self) -> str:
        return f"{self.backend}:{self.model}" if self.model else self.backend


@dataclass(frozen=True)
class MappingSettings:
    pattern: str
    backend: str
    model: str | None = None
    fallbacks: tuple[Target, ...] = ()
    priority: int = 0
    enabled: bool = True
    fallback_on: tuple[str, ...] = ()
    max_output_tokens: int | None = None  # a ceiling for the output limit of every attempt
    # Where a client key over its daily or monthly budget goes instead of a paid backend (a local
    # model); None: such a key is refused with 429.
    over_budget: Target | None = None
    # Equivalent backends that share this mapping's load, `backend` first (config order); empty: just
    # `backend`. Each request starts at the one `balance` picks; the others follow as failover.
    backends: tuple[str, ...] = ()
    balance: str = "least_outstanding"
    # A session that failed over to a fallback stays on it this long (then the chain's first choice
    # has it back), so an agent does not bounce between two models turn by turn; 0: never sticks.
    sticky_s: float = 300.0

    @property
    def spread(self) -> tuple[str, ...]:
        """The backends a request may start at: `backends`, or `backend` alone."""
        return self.backends or (self.backend,)


@dataclass(frozen=True)
class Price:
    """USD per million tokens of one cloud model. `cached`: prompt tokens read from the provider's
    prompt cache; `cache_write`: prompt tokens written to it (Anthropic charges them extra, OpenAI
    reports none). None: the input price."""

    input: float
    output: float
    cached: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True)
class PriceRule:
    """One [pricing] entry: the price of the models `model` (an fnmatch pattern) names, on the
    backend `backend` or, None, on any cloud backend."""

    model: str
    price: Price
    backend: str | None = None


@dataclass(frozen=True)
class Settings:
    path: Path
    server: ServerSettings = field(default_factory=ServerSettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    backends: dict[str, BackendSettings] = field(default_factory=dict)
    mappings: tuple[MappingSettings, ...] = ()
    default_policy: Policy = field(default_factory=Policy)
    pricing: tuple[PriceRule, ...] = ()  # [pricing]: checked before mlxgw.pricing's shipped defaults
    store: StoreSettings = field(default_factory=StoreSettings)
    # api_key values found in the TOML: moved into the encrypted store by the next sync.
    plaintext_keys: dict[str, str] = field(default_factory=dict)

    def with_address(self, host: str | None, port: int | None, *, insecure: bool = False) -> Settings:
        """The settings of a daemon started with `serve --host/--port/--insecure`."""
        server = replace(self.server, host=host or self.server.host, port=port or self.server.port, insecure=insecure)
        return replace(self, server=server)

    def policy_for(self, backend: str) -> Policy:
        if backend == LOCAL:
            return self.local.policy
        found = self.backends.get(backend)
        return found.policy if found else self.default_policy


