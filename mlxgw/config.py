"""The TOML config: the human-edited source of truth. Read into `Settings`, edited with tomlkit so
comments and layout survive, written atomically."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit
from tomlkit.exceptions import ParseError

from mlxgw.errors import ConfigError
from mlxgw.fsutil import create_atomic, write_atomic

BACKEND_TYPES = ("openai", "anthropic")
LOCAL = "local"
MAX_CHAIN = 8
WILDCARDS = "*?["


def is_pattern(name: str) -> bool:
    """Whether a mapping pattern has fnmatch wildcards (else it is one exact model name)."""
    return any(ch in name for ch in WILDCARDS)


MAX_TOKENS_FIELDS = ("max_completion_tokens", "max_tokens")
BACKEND_KEYS = {"type", "base_url", "api_key", "api_key_env", "max_output_tokens", "max_tokens_field"}

DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}

DEFAULT_CONFIG = """\
# mlxgw configuration. Edit freely: mlxgw keeps your comments and layout.
# Changes are picked up by a running daemon within a second or two.
# API keys do not belong here: use `mlxgw creds set NAME` (they are stored encrypted).

[server]
host = "127.0.0.1"   # keep it on loopback unless you have created client keys (`mlxgw keys create`)
port = 8421
request_deadline_s = 600   # a request, retries and fallbacks included, never takes longer
# keepalive_s = 10         # a streamed answer silent this long gets a keep-alive (a long prefill, a slow upstream); 0: never
max_request_mb = 32        # larger bodies are refused with 413
request_log_days = 30      # `mlxgw log` and `stats` keep this many days of requests; 0: keep them all
# header_timeout_s = 10    # a connection must send a whole request head within this (also: idle keep-alive); read at start
# body_timeout_s = 60      # ...and then the request's whole body within this, or get 408
# Web pages cannot call mlxgw (it refuses browser Origins, and Host names other than loopback and
# the bound address, which stops DNS rebinding). For a browser app you trust, list its origin; CORS
# preflights are then answered. A name mlxgw is reached by (behind a proxy, on the LAN) goes in allowed_hosts.
# allowed_origins = ["http://localhost:3000"]
# allowed_hosts = ["mlxgw.lan", "*.example.com"]
# Defaults for every backend (each [backends.NAME] may override them):
# connect_timeout_s = 10
# first_byte_timeout_s = 120
# idle_timeout_s = 120
# answer_timeout_s = 300   # a non-streamed answer, which arrives only once fully generated
# max_tries = 2
# breaker_failures = 5
# breaker_cooldown_s = 30

[local]
# The MLX worker that runs local models. Every key here applies live: a running worker takes new
# limits without a restart (models over a lowered limit are unloaded once idle).
max_loaded_models = 2
idle_unload_s = 900          # a model unused this long is unloaded; 0: keep models loaded
# memory_limit_gb = 16
# first_byte_timeout_s = 120 # the longest the worker may stay silent on a request (a model load included)

# Cloud backends. `mlxgw creds set openai` adds one for you.
# [backends.openai]
# type = "openai"                              # or "anthropic"
# base_url = "https://api.openai.com/v1"       # any OpenAI-compatible server works
# api_key_env = "OPENAI_API_KEY"               # optional: read the key from the environment
# max_output_tokens = 16384                    # optional: no request may ask for more (larger ones are lowered)
# max_tokens_field = "max_completion_tokens"   # openai type: the output-limit field translated requests use;
#                                              # default max_completion_tokens for api.openai.com and Azure
#                                              # OpenAI (their reasoning models refuse max_tokens), else
#                                              # max_tokens (older servers ignore the other field)

# Mappings: which backend answers which model name (fnmatch patterns; higher priority wins).
# [[mappings]]
# pattern = "gpt-*"
# backend = "openai"
# fallbacks = ["local:demo"]                   # "BACKEND" or "BACKEND:MODEL"
# priority = 0
# max_output_tokens = 16384                    # optional: the model's output limit; every attempt of this
#                                              # mapping asks for at most that (and the backend's own, if lower)
"""


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
    # `serve --insecure`, never read from the file: serve network callers while no client key exists.
    insecure: bool = False

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

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
class LocalSettings:
    max_loaded_models: int = 2
    idle_unload_s: float = 900.0
    memory_limit_gb: float | None = None
    policy: Policy = field(default_factory=Policy)


@dataclass(frozen=True)
class BackendSettings:
    name: str
    type: str
    base_url: str
    api_key_env: str | None = None
    policy: Policy = field(default_factory=Policy)
    max_output_tokens: int | None = None  # a ceiling for every request's output limit
    max_tokens_field: str = "max_tokens"  # openai type: the output limit's field in translated requests


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


@dataclass(frozen=True)
class Settings:
    path: Path
    server: ServerSettings = field(default_factory=ServerSettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    backends: dict[str, BackendSettings] = field(default_factory=dict)
    mappings: tuple[MappingSettings, ...] = ()
    default_policy: Policy = field(default_factory=Policy)
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


# ---- reading ---------------------------------------------------------------------------------


def ensure_config(path: Path) -> None:
    """Create the commented default config if there is none yet (never over one that a concurrent
    command has just written)."""
    if path.exists():
        return
    try:
        create_atomic(path, DEFAULT_CONFIG)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror or exc}") from None


def read_document(path: Path) -> tomlkit.TOMLDocument:
    ensure_config(path)
    text = path.read_text(encoding="utf-8")
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        raise ConfigError(f"{path}:{exc.line}: invalid TOML: {_parse_reason(exc)}") from None


def _parse_reason(exc: ParseError) -> str:
    return re.sub(r"\s+at line \d+ col \d+$", "", str(exc))


def load(path: Path) -> Settings:
    """Read and validate the config at `path` (created with defaults when missing)."""
    doc = read_document(path)
    return parse_settings(path, doc.unwrap(), path.read_text(encoding="utf-8"))


def parse_settings(path: Path, data: dict[str, Any], text: str) -> Settings:
    where = _Locator(path, text)
    for key in data:
        if key not in ("server", "local", "backends", "mappings"):
            raise where.error(f"unknown section {key!r}", (), key)

    server_raw = _table(data, "server", where)
    default_policy = _policy(server_raw, Policy(), where, ("server",))
    server = _server(server_raw, where)

    local_raw = _table(data, "local", where)
    local = LocalSettings(
        max_loaded_models=_get(local_raw, "max_loaded_models", int, 2, where, ("local",)),
        idle_unload_s=_get(local_raw, "idle_unload_s", float, 900.0, where, ("local",)),
        memory_limit_gb=_get(local_raw, "memory_limit_gb", float, None, where, ("local",)),
        policy=_policy(local_raw, default_policy, where, ("local",)),
    )
    _reject_unknown(
        local_raw, {"max_loaded_models", "idle_unload_s", "memory_limit_gb"} | set(POLICY_KEYS), where, ("local",)
    )

    backends: dict[str, BackendSettings] = {}
    plaintext: dict[str, str] = {}
    for name, raw in _table(data, "backends", where).items():
        at = ("backends", name)
        if not isinstance(raw, dict):
            raise where.error("must be a table", ("backends",), name)
        if name == LOCAL:
            raise where.error("'local' is the built-in MLX backend; configure it under [local]", at, "type")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise where.error("backend names may use letters, digits, '_', '.', '-'", ("backends",), name)
        btype = raw.get("type", name if name in BACKEND_TYPES else None)
        if btype not in BACKEND_TYPES:
            raise where.error(
                f"unknown backend type {btype!r} (expected one of: {', '.join(BACKEND_TYPES)})", at, "type"
            )
        base_url = _get(raw, "base_url", str, DEFAULT_BASE_URLS[btype], where, at).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise where.error("base_url must start with http:// or https://", at, "base_url")
        key = _get(raw, "api_key", str, None, where, at)
        if key:
            plaintext[name] = key
        backends[name] = BackendSettings(
            name=name,
            type=btype,
            base_url=base_url,
            api_key_env=_get(raw, "api_key_env", str, None, where, at),
            policy=_policy(raw, default_policy, where, at),
            max_output_tokens=_ceiling(raw, where, at),
            max_tokens_field=_max_tokens_field(raw, btype, base_url, where, at),
        )
        _reject_unknown(raw, BACKEND_KEYS | set(POLICY_KEYS), where, at)

    raw_mappings = data.get("mappings", [])
    if not isinstance(raw_mappings, list):
        raise where.error("must be an array of tables ([[mappings]])", (), "mappings")
    mappings = tuple(
        _mapping(raw, i, backends, where) for i, raw in enumerate(raw_mappings)
    )
    seen: set[str] = set()
    for i, m in enumerate(mappings):
        if m.pattern in seen:
            raise where.error(f"duplicate mapping pattern {m.pattern!r}", ("mappings", i), "pattern")
        seen.add(m.pattern)

    return Settings(
        path=path,
        server=server,
        local=local,
        backends=backends,
        mappings=mappings,
        default_policy=default_policy,
        plaintext_keys=plaintext,
    )


def _server(raw: dict, where: _Locator) -> ServerSettings:
    at = ("server",)
    defaults = ServerSettings()
    values = {
        key: _get(raw, key, typ, getattr(defaults, key), where, at)
        for key, typ in (
            ("host", str), ("port", int), ("request_deadline_s", float), ("max_request_mb", float),
            ("anthropic_version", str), ("header_timeout_s", float), ("body_timeout_s", float),
            ("keepalive_s", float),
            ("request_log_days", float),
        )
    }
    _reject_unknown(raw, SERVER_FILE_KEYS | set(POLICY_KEYS), where, at)
    if not 0 < values["port"] < 65536:
        raise where.error("port must be between 1 and 65535", at, "port")
    for key in ("header_timeout_s", "body_timeout_s"):
        if values[key] <= 0:
            raise where.error("must be more than 0", at, key)
    if values["keepalive_s"] < 0:
        raise where.error("must be 0 (no keep-alives) or more", at, "keepalive_s")
    return ServerSettings(
        **values,
        allowed_origins=_listed(raw, "allowed_origins", _origin, where),
        allowed_hosts=_listed(raw, "allowed_hosts", _host_pattern, where),
    )


def _listed(raw: dict, key: str, parse: Any, where: _Locator) -> tuple[str, ...]:
    """A [server] list of strings, each normalised by `parse` (which says what is wrong with a bad one)."""
    out = []
    for item in _get(raw, key, list, [], where, ("server",)):
        if not isinstance(item, str):
            raise where.error("must be a list of strings", ("server",), key)
        try:
            out.append(parse(item.strip()))
        except ValueError as exc:
            raise where.error(f"{item!r}: {exc}", ("server",), key) from None
    return tuple(out)


def _origin(text: str) -> str:
    """A browser origin as its `Origin` header spells it: scheme://host[:port], lower case, no default port."""
    if text in ("*", "null"):
        raise ValueError("would let any web page drive the gateway; list each origin, like https://app.example.com")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
        raise ValueError("expected an origin like https://app.example.com or http://localhost:3000")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("an origin has no path: scheme://host[:port] only")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


_HOST_NAME = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


def _host_pattern(text: str) -> str:
    """A Host name to accept: a name, `*.domain` (its subdomains), or an IP address; no scheme or port."""
    name = text.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(name):
        raise ValueError("expected a host name (or *.domain, or an IP address), without scheme or port")
    return name


def _mapping(raw: Any, i: int, backends: dict[str, BackendSettings], where: _Locator) -> MappingSettings:
    at = ("mappings", i)
    if not isinstance(raw, dict):
        raise where.error("each mapping must be a table", (), "mappings")
    for key in ("pattern", "backend"):
        if key not in raw:
            raise where.error(f"mapping is missing {key!r}", at, None)
    pattern = _get(raw, "pattern", str, "", where, at)
    backend = _get(raw, "backend", str, "", where, at)
    if not pattern.strip():
        raise where.error("pattern must not be empty", at, "pattern")
    known = set(backends) | {LOCAL}
    if backend not in known:
        raise where.error(f"unknown backend {backend!r} (known: {', '.join(sorted(known))})", at, "backend")
    model = _get(raw, "model", str, None, where, at)
    if backend == LOCAL and not model and is_pattern(pattern):
        raise where.error("a local mapping with a wildcard pattern needs a model", at, "model")
    fallbacks_raw = _get(raw, "fallbacks", list, [], where, at)
    fallbacks: list[Target] = []
    primary = Target(backend, model)
    for text in fallbacks_raw:
        if not isinstance(text, str):
            raise where.error("fallbacks must be strings", at, "fallbacks")
        try:
            target = Target.parse(text)
        except ValueError as exc:
            raise where.error(str(exc), at, "fallbacks") from None
        if target.backend not in known:
            raise where.error(f"unknown backend {target.backend!r} in fallback {text!r}", at, "fallbacks")
        if _same_attempt(target, primary, pattern):
            raise where.error(f"fallback {text!r} is the mapping's own primary", at, "fallbacks")
        if any(_same_attempt(target, other, pattern) for other in fallbacks):
            raise where.error(f"fallback {text!r} is listed twice", at, "fallbacks")
        fallbacks.append(target)
    if 1 + len(fallbacks) > MAX_CHAIN:
        raise where.error(f"a chain is at most {MAX_CHAIN} attempts", at, "fallbacks")
    fallback_on = tuple(_get(raw, "fallback_on", list, [], where, at))
    for reason in fallback_on:
        if reason != "context_length":
            raise where.error(f"unknown fallback_on reason {reason!r} (known: context_length)", at, "fallback_on")
    _reject_unknown(
        raw,
        {"pattern", "backend", "model", "fallbacks", "priority", "enabled", "fallback_on", "max_output_tokens"},
        where,
        at,
    )
    return MappingSettings(
        pattern=pattern,
        backend=backend,
        model=model,
        fallbacks=tuple(fallbacks),
        priority=_get(raw, "priority", int, 0, where, at),
        enabled=_get(raw, "enabled", bool, True, where, at),
        fallback_on=fallback_on,
        max_output_tokens=_ceiling(raw, where, at),
    )


def _ceiling(raw: dict, where: _Locator, at: tuple) -> int | None:
    value = _get(raw, "max_output_tokens", int, None, where, at)
    if value is not None and value < 1:
        raise where.error("must be at least 1", at, "max_output_tokens")
    return value


def default_max_tokens_field(base_url: str) -> str:
    """OpenAI itself and Azure OpenAI refuse `max_tokens` for their reasoning models; every other
    OpenAI-compatible server knows `max_tokens`, and older ones (llama.cpp before 2026,
    llama-cpp-python, llamafile) silently ignore `max_completion_tokens`."""
    host = urlsplit(base_url).hostname or ""
    return "max_completion_tokens" if host == "api.openai.com" or host.endswith(".openai.azure.com") else "max_tokens"


def _max_tokens_field(raw: dict, btype: str, base_url: str, where: _Locator, at: tuple) -> str:
    value = _get(raw, "max_tokens_field", str, None, where, at)
    if value is None:
        return default_max_tokens_field(base_url)
    if btype != "openai":
        raise where.error("applies to openai backends only", at, "max_tokens_field")
    if value not in MAX_TOKENS_FIELDS:
        raise where.error(f"must be one of {', '.join(MAX_TOKENS_FIELDS)}", at, "max_tokens_field")
    return value


def _same_attempt(a: Target, b: Target, pattern: str) -> bool:
    """Two targets are the same attempt when they name the same backend and model.

    A target without a model asks for the requested name; for a pattern without wildcards that name
    is the pattern itself, so `openai` and `openai:gpt-4o` collide under pattern `gpt-4o`.
    """
    literal = None if is_pattern(pattern) else pattern
    return a.backend == b.backend and (a.model or literal) == (b.model or literal)


def _table(data: dict, key: str, where: _Locator) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise where.error("must be a table", (), key)
    return value


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}


def _get(raw: dict, key: str, typ: type, default: Any, where: _Locator, at: tuple) -> Any:
    if key not in raw:
        return default
    value = raw[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise where.error(f"must be {_TYPE_NAMES[typ]}", at, key)
    if typ in (int, float) and value < 0:
        raise where.error("must not be negative", at, key)
    return value


def _policy(raw: dict, base: Policy, where: _Locator, at: tuple) -> Policy:
    values = {}
    for key, typ in POLICY_KEYS.items():
        py_type = float if typ in (float, "float") else int
        value = _get(raw, key, py_type, None, where, at)
        if value is not None:
            values[key] = value
    if values.get("max_tries", 1) < 1:
        raise where.error("must be at least 1", at, "max_tries")
    return replace(base, **values)


def _reject_unknown(raw: dict, allowed: set[str], where: _Locator, at: tuple) -> None:
    for key in raw:
        if key not in allowed:
            raise where.error(f"unknown key {key!r}", at, key)


class _Locator:
    """Finds the line of a key in the TOML text, so errors can point at it."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def error(self, message: str, at: tuple, key: str | None) -> ConfigError:
        name = ".".join(str(p) for p in at if not isinstance(p, int))
        if at and isinstance(at[-1], int):
            name = f"{name}[{at[-1]}]"
        if key:
            name = f"{name}.{key}" if name else key
        line = self._line(at, key)
        location = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{location}: {name}: {message}", reason=message)

    def _line(self, at: tuple, key: str | None) -> int | None:
        header = self._header_line(at)
        if key is None:
            return header
        if not at:
            for n, text in enumerate(self.lines):
                if re.match(rf"^\s*\[+\s*{re.escape(key)}\s*[\].]", text):
                    return n + 1
        key_re = re.compile(rf'^\s*("{re.escape(key)}"|{re.escape(key)})\s*=')
        for n in range(header or 0, len(self.lines)):
            text = self.lines[n]
            if text.lstrip().startswith("["):
                break
            if key_re.match(text):
                return n + 1
        return header

    def _header_line(self, at: tuple) -> int | None:
        if not at:
            return None
        if isinstance(at[-1], int):
            wanted, count = ".".join(at[:-1]), at[-1]
            seen = -1
            for n, text in enumerate(self.lines):
                if re.match(rf"^\s*\[\[\s*{re.escape(wanted)}\s*\]\]", text):
                    seen += 1
                    if seen == count:
                        return n + 1
            return None
        name = ".".join(at)
        for n, text in enumerate(self.lines):
            m = re.match(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", text)
            if m and m.group(1).replace('"', "") == name:
                return n + 1
        return None


# ---- editing ---------------------------------------------------------------------------------


class ConfigEditor:
    """Edits the TOML document in place (comments kept), validates, then writes atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc = read_document(path)

    def save(self) -> Settings:
        text = tomlkit.dumps(self.doc)
        try:
            settings = parse_settings(self.path, tomlkit.parse(text).unwrap(), text)
        except ConfigError as exc:
            # The edit never reached the file, so a line number in it would mislead.
            raise ConfigError(exc.reason) from None
        write_atomic(self.path, text, mode=self.path.stat().st_mode & 0o777 if self.path.exists() else 0o644)
        return settings

    def _mappings(self) -> tomlkit.items.AoT:
        if "mappings" not in self.doc:
            self.doc.add(tomlkit.nl())
            self.doc.append("mappings", tomlkit.aot())
        return self.doc["mappings"]

    def add_mapping(self, mapping: MappingSettings, *, replace_existing: bool = False) -> None:
        """Append a mapping; with `replace_existing`, rewrite the one with the same pattern in place
        (its position, comments, `enabled` and `fallback_on` stay)."""
        aot = self._mappings()
        table = next((t for t in aot if t.get("pattern") == mapping.pattern), None)
        if table is not None and not replace_existing:
            raise ConfigError(f"a mapping for {mapping.pattern!r} already exists (remove it first, or --replace)")
        fresh = table is None
        if fresh:
            table = tomlkit.table()
            table["pattern"] = mapping.pattern
        table["backend"] = mapping.backend
        for key, value in (
            ("model", mapping.model),
            ("fallbacks", [str(t) for t in mapping.fallbacks]),
            ("priority", mapping.priority),
            ("max_output_tokens", mapping.max_output_tokens),
        ):
            if value:
                table[key] = value
            elif key in table:
                del table[key]
        if fresh:
            if not mapping.enabled:
                table["enabled"] = False
            table.add(tomlkit.nl())
            aot.append(table)

    def remove_mapping(self, pattern: str) -> None:
        aot = self.doc.get("mappings")
        for i, existing in enumerate(aot or []):
            if existing.get("pattern") == pattern:
                if len(aot) == 1:
                    del self.doc["mappings"]  # tomlkit cannot append to an emptied array of tables
                else:
                    del aot[i]
                return
        raise ConfigError(f"no mapping with pattern {pattern!r}")

    def set_backend(self, name: str, btype: str, base_url: str | None, *, keyless: bool = False) -> None:
        """Add or update [backends.NAME]; `keyless` also drops any api_key / api_key_env it has, so
        that no key reaches that server by any route."""
        if "backends" not in self.doc:
            self.doc.append("backends", tomlkit.table(is_super_table=True))
        backends = self.doc["backends"]
        if name not in backends:
            backends.append(name, tomlkit.table())
        table = backends[name]
        table["type"] = btype
        if base_url:
            table["base_url"] = base_url
        elif "base_url" not in table:
            table["base_url"] = DEFAULT_BASE_URLS.get(btype, "")
        if keyless:
            for key in ("api_key", "api_key_env"):
                table.pop(key, None)

    def has_backend(self, name: str) -> bool:
        return name in (self.doc.get("backends") or {})

    def remove_backend(self, name: str) -> None:
        backends = self.doc.get("backends")
        if not backends or name not in backends:
            raise ConfigError(f"no backend named {name!r} in {self.path}")
        for m in self.doc.get("mappings", []):
            targets = [m.get("backend")] + [str(f).partition(":")[0] for f in m.get("fallbacks", [])]
            if name in targets:
                raise ConfigError(f"backend {name!r} is used by mapping {m.get('pattern')!r}; remove that first")
        del backends[name]

    def strip_api_keys(self) -> list[str]:
        """Remove every `api_key` from [backends.*]; returns the backends it was removed from."""
        removed = []
        for name, table in (self.doc.get("backends") or {}).items():
            if isinstance(table, dict) and "api_key" in table:
                del table["api_key"]
                removed.append(name)
        return removed
