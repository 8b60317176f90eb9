"""Reading one value of the TOML: its type, its range, its normal form."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from mlxgw.config.locator import Locator
from mlxgw.settings import POLICY_KEYS, Policy


def table(data: dict, key: str, where: Locator) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise where.error("must be a table", (), key)
    return value


TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}


def get(raw: dict, key: str, typ: type, default: Any, where: Locator, at: tuple) -> Any:
    if key not in raw:
        return default
    value = raw[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise where.error(f"must be {TYPE_NAMES[typ]}", at, key)
    if typ in (int, float) and value < 0:
        raise where.error("must not be negative", at, key)
    return value


def policy(raw: dict, base: Policy, where: Locator, at: tuple) -> Policy:
    values = {}
    for key, typ in POLICY_KEYS.items():
        py_type = float if typ in (float, "float") else int
        value = get(raw, key, py_type, None, where, at)
        if value is not None:
            values[key] = value
    if values.get("max_tries", 1) < 1:
        raise where.error("must be at least 1", at, "max_tries")
    return replace(base, **values)


def reject_unknown(raw: dict, allowed: set[str], where: Locator, at: tuple) -> None:
    for key in raw:
        if key not in allowed:
            raise where.error(f"unknown key {key!r}", at, key)




def listed(raw: dict, key: str, parse: Any, where: Locator) -> tuple[str, ...]:
    """A [server] list of strings, each normalised by `parse` (which says what is wrong with a bad one)."""
    out = []
    for item in get(raw, key, list, [], where, ("server",)):
        if not isinstance(item, str):
            raise where.error("must be a list of strings", ("server",), key)
        try:
            out.append(parse(item.strip()))
        except ValueError as exc:
            raise where.error(f"{item!r}: {exc}", ("server",), key) from None
    return tuple(out)


def origin(text: str) -> str:
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


HOST_NAME = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


def host_pattern(text: str) -> str:
    """A Host name to accept: a name, `*.domain` (its subdomains), or an IP address; no scheme or port."""
    name = text.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    if not HOST_NAME.fullmatch(name):
        raise ValueError("expected a host name (or *.domain, or an IP address), without scheme or port")
    return name


