"""From the TOML's data to `Settings`: every key checked, every error pointing at its line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlxgw.config.locator import Locator
from mlxgw.config.values import get, host_pattern, listed, origin, policy, reject_unknown, table
from mlxgw.kinds import KINDS
from mlxgw.settings import (
    BALANCES,
    FALLBACK_REASONS,
    LOCAL,
    LOCAL_FILE_KEYS,
    MAX_CHAIN,
    MAX_TOKENS_FIELDS,
    POLICY_KEYS,
    SERVER_FILE_KEYS,
    BackendSettings,
    LocalSettings,
    MappingSettings,
    Policy,
    Price,
    PriceRule,
    ServerSettings,
    Settings,
    StoreSettings,
    Target,
    default_max_tokens_field,
    default_responses,
    is_pattern,
)

BACKEND_KEYS = {"type", "base_url", "api_key", "api_key_env", "max_output_tokens", "max_tokens_field", "responses"}


def parse_settings(path: Path, data: dict[str, Any], text: str) -> Settings:
    where = Locator(path, text)
    for key in data:
        if key not in ("server", "local", "backends", "mappings", "pricing", "store"):
            raise where.error(f"unknown section {key!r}", (), key)

    server_raw = table(data, "server", where)
    default_policy = policy(server_raw, Policy(), where, ("server",))
    server = _server(server_raw, where)

    local = _local(table(data, "local", where), default_policy, where)

    backends: dict[str, BackendSettings] = {}
    plaintext: dict[str, str] = {}
    for name, raw in table(data, "backends", where).items():
        at = ("backends", name)
        if not isinstance(raw, dict):
            raise where.error("must be a table", ("backends",), name)
        if name == LOCAL:
            raise where.error("'local' is the built-in MLX backend; configure it under [local]", at, "type")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise where.error("backend names may use letters, digits, '_', '.', '-'", ("backends",), name)
        btype = raw.get("type", name if name in KINDS else None)
        if btype not in KINDS:
            raise where.error(f"unknown backend type {btype!r} (expected one of: {', '.join(KINDS)})", at, "type")
        base_url = get(raw, "base_url", str, KINDS[btype].default_base_url, where, at).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise where.error("base_url must start with http:// or https://", at, "base_url")
        key = get(raw, "api_key", str, None, where, at)
        if key:
            plaintext[name] = key
        backends[name] = BackendSettings(
            name=name,
            type=btype,
            base_url=base_url,
            api_key_env=get(raw, "api_key_env", str, None, where, at),
            policy=policy(raw, default_policy, where, at),
            max_output_tokens=_ceiling(raw, where, at),
            max_tokens_field=_max_tokens_field(raw, btype, base_url, where, at),
            responses=_responses(raw, btype, base_url, where, at),
        )
        reject_unknown(raw, BACKEND_KEYS | set(POLICY_KEYS), where, at)

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
        pricing=_pricing(table(data, "pricing", where), backends, where),
        plaintext_keys=plaintext,
        store=_store(table(data, "store", where), where),
    )


def _store(raw: dict, where: Locator) -> StoreSettings:
    at = ("store",)
    reject_unknown(raw, {"url"}, where, at)
    url = get(raw, "url", str, None, where, at)
    if url is None:
        return StoreSettings()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise where.error("expected a PostgreSQL URL like postgresql://USER@HOST:5432/mlxgw", at, "url")
    if parts.password is not None:
        raise where.error("a password does not belong in the config: set PGPASSWORD or use ~/.pgpass", at, "url")
    return StoreSettings(url=url)


def _local(raw: dict, default_policy: Policy, where: Locator) -> LocalSettings:
    at = ("local",)
    defaults = LocalSettings()
    values = {key: get(raw, key, typ, getattr(defaults, key), where, at) for key, typ in LOCAL_FILE_KEYS.items()}
    reject_unknown(raw, set(LOCAL_FILE_KEYS) | set(POLICY_KEYS), where, at)
    if values["default_max_tokens"] < 1:
        raise where.error("must be at least 1", at, "default_max_tokens")
    return LocalSettings(**values, policy=policy(raw, default_policy, where, at))


def _server(raw: dict, where: Locator) -> ServerSettings:
    at = ("server",)
    defaults = ServerSettings()
    values = {
        key: get(raw, key, typ, getattr(defaults, key), where, at)
        for key, typ in (
            ("host", str), ("port", int), ("request_deadline_s", float), ("max_request_mb", float),
            ("anthropic_version", str), ("header_timeout_s", float), ("body_timeout_s", float),
            ("keepalive_s", float),
            ("request_log_days", float),
            ("responses_days", float),
            ("metrics_open_on_loopback", bool),
            ("replica", str),
        )
    }
    reject_unknown(raw, SERVER_FILE_KEYS | set(POLICY_KEYS), where, at)
    if not 0 < values["port"] < 65536:
        raise where.error("port must be between 1 and 65535", at, "port")
    for key in ("header_timeout_s", "body_timeout_s"):
        if values[key] <= 0:
            raise where.error("must be more than 0", at, key)
    if values["keepalive_s"] < 0:
        raise where.error("must be 0 (no keep-alives) or more", at, "keepalive_s")
    return ServerSettings(
        **values,
        allowed_origins=listed(raw, "allowed_origins", origin, where),
        allowed_hosts=listed(raw, "allowed_hosts", host_pattern, where),
    )


def _mapping(raw: Any, i: int, backends: dict[str, BackendSettings], where: Locator) -> MappingSettings:
    at = ("mappings", i)
    if not isinstance(raw, dict):
        raise where.error("each mapping must be a table", (), "mappings")
    if "pattern" not in raw:
        raise where.error("mapping is missing 'pattern'", at, None)
    if "backend" not in raw and "backends" not in raw:
        raise where.error("mapping is missing 'backend' (or 'backends', to spread it over several)", at, None)
    pattern = get(raw, "pattern", str, "", where, at)
    if not pattern.strip():
        raise where.error("pattern must not be empty", at, "pattern")
    known = set(backends) | {LOCAL}
    spread = _spread(raw, known, where, at)
    backend = spread[0] if spread else get(raw, "backend", str, "", where, at)
    if backend not in known:
        raise where.error(f"unknown backend {backend!r} (known: {', '.join(sorted(known))})", at, "backend")
    model = get(raw, "model", str, None, where, at)
    if LOCAL in (backend, *spread) and not model and is_pattern(pattern):
        raise where.error("a local mapping with a wildcard pattern needs a model", at, "model")
    fallbacks_raw = get(raw, "fallbacks", list, [], where, at)
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
        if any(_same_attempt(target, Target(name, model), pattern) for name in spread):
            raise where.error(f"fallback {text!r} is one of the mapping's backends", at, "fallbacks")
        if any(_same_attempt(target, other, pattern) for other in fallbacks):
            raise where.error(f"fallback {text!r} is listed twice", at, "fallbacks")
        fallbacks.append(target)
    if max(1, len(spread)) + len(fallbacks) > MAX_CHAIN:
        raise where.error(f"a chain is at most {MAX_CHAIN} attempts, its backends included", at, "fallbacks")
    balance = get(raw, "balance", str, BALANCES[0], where, at)
    if balance not in BALANCES:
        raise where.error(f"unknown balance {balance!r} (known: {', '.join(BALANCES)})", at, "balance")
    if "balance" in raw and not spread:
        raise where.error("balance needs `backends`: two or more equivalent backends to spread over", at, "balance")
    over_budget = _over_budget(raw, where, at)
    fallback_on = tuple(get(raw, "fallback_on", list, [], where, at))
    for reason in fallback_on:
        if reason not in FALLBACK_REASONS:
            raise where.error(
                f"unknown fallback_on reason {reason!r} (known: {', '.join(FALLBACK_REASONS)})", at, "fallback_on"
            )
    reject_unknown(
        raw,
        {
            "pattern", "backend", "model", "fallbacks", "priority", "enabled", "fallback_on", "max_output_tokens",
            "over_budget", "backends", "balance", "sticky_s",
        },
        where,
        at,
    )
    return MappingSettings(
        pattern=pattern,
        backend=backend,
        model=model,
        fallbacks=tuple(fallbacks),
        priority=get(raw, "priority", int, 0, where, at),
        enabled=get(raw, "enabled", bool, True, where, at),
        fallback_on=fallback_on,
        max_output_tokens=_ceiling(raw, where, at),
        over_budget=over_budget,
        backends=spread,
        balance=balance,
        sticky_s=get(raw, "sticky_s", float, MappingSettings.sticky_s, where, at),
    )


def _spread(raw: dict, known: set[str], where: Locator, at: tuple) -> tuple[str, ...]:
    """`backends`: two or more distinct, known backends that can each serve the mapping alike."""
    if "backends" not in raw:
        return ()
    if "backend" in raw:
        raise where.error("give `backend` or `backends`, not both", at, "backends")
    names = get(raw, "backends", list, [], where, at)
    if not all(isinstance(name, str) for name in names):
        raise where.error("backends must be strings (backend names)", at, "backends")
    if len(names) < 2:
        raise where.error("backends needs two or more names (one backend is `backend = NAME`)", at, "backends")
    for name in names:
        if name not in known:
            raise where.error(f"unknown backend {name!r} (known: {', '.join(sorted(known))})", at, "backends")
        if names.count(name) > 1:
            raise where.error(f"backend {name!r} is listed twice", at, "backends")
    return tuple(names)


def _over_budget(raw: dict, where: Locator, at: tuple) -> Target | None:
    """A local model only: a key over its budget must not reach another paid backend."""
    text = get(raw, "over_budget", str, None, where, at)
    if text is None:
        return None
    try:
        target = Target.parse(text)
    except ValueError:
        target = None
    if target is None or target.backend != LOCAL or not target.model:
        raise where.error(f"expected \"local:MODEL\" (a local model answers keys over their budget), not {text!r}", at, "over_budget")
    return target


PRICE_FIELDS = ("input", "output", "cached", "cache_write")


def _pricing(raw: dict, backends: dict[str, BackendSettings], where: Locator) -> tuple[PriceRule, ...]:
    """[pricing]: "MODEL" (any cloud backend) or "BACKEND:MODEL" = { input = …, output = …, cached = …,
    cache_write = … } in USD per million tokens; MODEL may be an fnmatch pattern. A prefix that names
    no configured backend is part of the model name (Ollama's "llama3:8b")."""
    at = ("pricing",)
    rules = []
    for key, entry in raw.items():
        backend, sep, model = key.partition(":")
        if sep and backend == LOCAL:
            raise where.error("local models cost nothing; price cloud models only", at, key)
        if not (sep and backend in backends):
            backend, model = None, key
        if not model.strip():
            raise where.error("expected \"MODEL\" or \"BACKEND:MODEL\"", at, key)
        if not isinstance(entry, dict):
            raise where.error("must be a table of USD per million tokens, like { input = 2.5, output = 10 }", at, key)
        for name in entry:
            if name not in PRICE_FIELDS:
                raise where.error(f"unknown price {name!r} (known: {', '.join(PRICE_FIELDS)})", at, key)
        values = {}
        for name in PRICE_FIELDS:
            value = entry.get(name)
            if value is None and name in ("input", "output"):
                raise where.error(f"missing {name!r} (USD per million tokens)", at, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
                raise where.error(f"{name} must be a number of USD per million tokens, 0 or more", at, key)
            values[name] = None if value is None else float(value)
        rules.append(PriceRule(model, Price(**values), backend))
    return tuple(rules)


def _ceiling(raw: dict, where: Locator, at: tuple) -> int | None:
    value = get(raw, "max_output_tokens", int, None, where, at)
    if value is not None and value < 1:
        raise where.error("must be at least 1", at, "max_output_tokens")
    return value


def _max_tokens_field(raw: dict, btype: str, base_url: str, where: Locator, at: tuple) -> str:
    value = get(raw, "max_tokens_field", str, None, where, at)
    if value is None:
        return default_max_tokens_field(base_url)
    if btype != "openai":
        raise where.error("applies to openai backends only", at, "max_tokens_field")
    if value not in MAX_TOKENS_FIELDS:
        raise where.error(f"must be one of {', '.join(MAX_TOKENS_FIELDS)}", at, "max_tokens_field")
    return value


def _responses(raw: dict, btype: str, base_url: str, where: Locator, at: tuple) -> bool:
    value = get(raw, "responses", bool, None, where, at)
    if value is None:
        return btype == "openai" and default_responses(base_url)
    if btype != "openai":
        raise where.error("applies to openai backends only (a responses backend speaks nothing else)", at, "responses")
    return value


def _same_attempt(a: Target, b: Target, pattern: str) -> bool:
    """Two targets are the same attempt when they name the same backend and model.

    A target without a model asks for the requested name; for a pattern without wildcards that name
    is the pattern itself, so `openai` and `openai:gpt-4o` collide under pattern `gpt-4o`.
    """
    literal = None if is_pattern(pattern) else pattern
    return a.backend == b.backend and (a.model or literal) == (b.model or literal)


