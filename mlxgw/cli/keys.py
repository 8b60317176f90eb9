"""`mlxgw keys`: keys that clients must present to the gateway."""

from __future__ import annotations

import time
from dataclasses import asdict

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mlxgw.cli.output import console, emit_json, err_console
from mlxgw.daemon.lock import holder
from mlxgw.errors import MlxgwError
from mlxgw.settings import ServerSettings, is_loopback
from mlxgw.store import client_keys, usage_limits
from mlxgw.store.usage_limits import Limits
from mlxgw.workspace import Workspace

app = typer.Typer(help="Client keys for the gateway's own API (once one exists, every /v1 request needs one).", no_args_is_help=True)


RPM = typer.Option(None, "--rpm", help="Requests per minute (a burst of N, then one every 60/N s).")
TPM = typer.Option(None, "--tpm", help="Tokens per minute, input plus output, counted as requests finish.")
DAILY = typer.Option(None, "--daily-usd", help="USD per UTC day; over it, only a mapping's over_budget local model answers.")
MONTHLY = typer.Option(None, "--monthly-usd", help="USD per UTC month; as --daily-usd.")
LIMIT_NAMES = {"rpm": "rpm", "tpm": "tpm", "daily-usd": "daily_usd", "monthly-usd": "monthly_usd"}


@app.command("create")
def create(
    name: str = typer.Argument(..., help="A name to recognise the key by."),
    rpm: int | None = RPM,
    tpm: int | None = TPM,
    daily_usd: float | None = DAILY,
    monthly_usd: float | None = MONTHLY,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a client key and print it once; only its hash is kept. Over a limit its requests get
    429 with Retry-After (over a budget, a mapping with over_budget answers them locally instead)."""
    Workspace.open()
    key = client_keys.create(name, Limits(rpm, tpm, daily_usd, monthly_usd))
    if as_json:
        emit_json({"name": name, "key": key})
    else:
        print(key)


@app.command("update")
def update(
    name: str = typer.Argument(..., help="The key to change."),
    rpm: int | None = RPM,
    tpm: int | None = TPM,
    daily_usd: float | None = DAILY,
    monthly_usd: float | None = MONTHLY,
    clear: list[str] = typer.Option([], "--clear", help="A limit to remove: rpm, tpm, daily-usd or monthly-usd; repeatable."),
) -> None:
    """Change a client key's limits; a running daemon applies them within a second or two. What the
    key has used so far still counts."""
    Workspace.open()
    unknown = [c for c in clear if c not in LIMIT_NAMES]
    if unknown:
        raise MlxgwError(f"unknown limit {unknown[0]!r} for --clear (known: {', '.join(LIMIT_NAMES)})")
    changes = {k: v for k, v in {"rpm": rpm, "tpm": tpm, "daily_usd": daily_usd, "monthly_usd": monthly_usd}.items() if v is not None}
    cleared = {LIMIT_NAMES[c] for c in clear}
    if both := sorted(cleared & set(changes)):
        raise MlxgwError(f"--{both[0].replace('_', '-')} is both set and cleared")
    if not changes and not cleared:
        raise MlxgwError("nothing to change: give --rpm, --tpm, --daily-usd, --monthly-usd or --clear")
    limits = client_keys.update(name, changes, cleared, time.time())
    console.print(f"client key [bold]{escape(name)}[/]: {escape(_limits_text(limits))}", highlight=False)


def _limits_text(limits: Limits) -> str:
    parts = [
        f"{limits.rpm} rpm" if limits.rpm is not None else None,
        f"{limits.tpm} tpm" if limits.tpm is not None else None,
        f"${limits.daily_usd:g}/day" if limits.daily_usd is not None else None,
        f"${limits.monthly_usd:g}/month" if limits.monthly_usd is not None else None,
    ]
    return ", ".join(p for p in parts if p) or "no limits"


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List client keys (names and prefixes only), their limits and what they used: requests and
    tokens in their rate windows now, today's and this month's spend (UTC)."""
    Workspace.open()
    now = time.time()
    keys = client_keys.listing()
    spent = usage_limits.spending([k.name for k in keys], now)
    rows = [
        {"name": k.name, "prefix": k.prefix + "…", "created_at": k.created_at.isoformat(timespec="seconds") + "Z",
         "last_used_at": k.last_used_at.isoformat(timespec="seconds") + "Z" if k.last_used_at else None,
         **asdict(Limits.of(k)), **usage_limits.in_use(k, now), **spent[k.name]}
        for k in keys
    ]
    if as_json:
        emit_json(rows)
        return
    table = Table("name", "prefix", "created", "last used", "used / limit")
    for r in rows:
        table.add_row(Text(r["name"]), r["prefix"], r["created_at"], r["last_used_at"] or "never", _use(r))
    console.print(table)


def _use(r: dict) -> str:
    """One line per limit, "rpm 3/10"; today's and this month's spend always (UTC)."""
    lines = [f"{name} {r[name + '_used']}/{r[name]}" for name in ("rpm", "tpm") if r[name] is not None]
    for label, used, limit in (("today", r["today_usd"], r["daily_usd"]), ("month", r["month_usd"], r["monthly_usd"])):
        lines.append(f"{label} ${used:.2f}" + (f"/${limit:.2f}" if limit is not None else ""))
    return "\n".join(lines)


@app.command("revoke")
def revoke(name: str = typer.Argument(..., help="The key to revoke.")) -> None:
    """Revoke a client key; a running daemon refuses it within a second or two. To replace the last
    key without opening the gateway, create the new one first."""
    ws = Workspace.open()
    client_keys.revoke(name)
    console.print(f"revoked client key [bold]{escape(name)}[/]", highlight=False)
    if not client_keys.listing():
        err_console.print(f"[yellow]warning:[/] {_last_key_gone(ws.settings.server)}", highlight=False, soft_wrap=True)


def _last_key_gone(server: ServerSettings) -> str:
    """What revoking the last key did, to the daemon that runs (or would run) on this home."""
    info = holder()
    running = info is not None and info.listening
    host, port = (info.host or "", info.port) if running else (server.host, server.port)
    if not is_loopback(host):
        where = f"the daemon (pid {info.pid}) listens" if running else "the config has the daemon listen"
        return (
            f"that was the last client key, and {where} on {host}:{port}, a network address: it refuses every "
            "/v1 request until you create a key with `mlxgw keys create NAME` (a daemon started with --insecure "
            "serves anyone who can reach it instead)."
        )
    return (
        "that was the last client key: the gateway now accepts every caller on this machine, with any key "
        "or none. Close it again with `mlxgw keys create NAME`; to replace a key without a gap, create the "
        "new one first, then revoke the old one."
    )
