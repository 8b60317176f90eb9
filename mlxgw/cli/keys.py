"""`mlxgw keys`: keys that clients must present to the gateway."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mlxgw.cli.output import console, emit_json, err_console
from mlxgw.daemon.lock import holder
from mlxgw.settings import ServerSettings, is_loopback
from mlxgw.store import client_keys
from mlxgw.workspace import Workspace

app = typer.Typer(help="Client keys for the gateway's own API (once one exists, every /v1 request needs one).", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="A name to recognise the key by."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a client key and print it once; only its hash is kept."""
    Workspace.open()
    key = client_keys.create(name)
    if as_json:
        emit_json({"name": name, "key": key})
    else:
        print(key)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List client keys (names and prefixes only)."""
    Workspace.open()
    rows = [
        {"name": k.name, "prefix": k.prefix + "…", "created_at": k.created_at.isoformat(timespec="seconds") + "Z",
         "last_used_at": k.last_used_at.isoformat(timespec="seconds") + "Z" if k.last_used_at else None}
        for k in client_keys.listing()
    ]
    if as_json:
        emit_json(rows)
        return
    table = Table("name", "prefix", "created", "last used")
    for r in rows:
        table.add_row(Text(r["name"]), r["prefix"], r["created_at"], r["last_used_at"] or "never")
    console.print(table)


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
