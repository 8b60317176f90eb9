"""`mlxgw creds`: cloud backends and their encrypted API keys."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mlxgw.cli.output import console, emit_json, note_sync, open_workspace
from mlxgw.errors import MlxgwError
from mlxgw.kinds import KINDS
from mlxgw.store import credentials
from mlxgw.store.database import bump_generation
from mlxgw.workspace import Workspace, home_lock

app = typer.Typer(help="Cloud backends and their API keys (stored encrypted, never printed).", no_args_is_help=True)


def _read_key(name: str) -> str:
    if sys.stdin.isatty():
        key = typer.prompt(f"API key for {name}", hide_input=True)
    else:
        key = sys.stdin.readline()
    key = key.strip()
    if not key:
        raise MlxgwError("no API key given (use --no-key for a backend that needs none)")
    return key


@app.command("set")
def set_(
    name: str = typer.Argument(..., help="Backend name, e.g. openai, anthropic, groq."),
    btype: str | None = typer.Option(None, "--type", "-t", help=f"The kind of backend: {', '.join(KINDS)} (default: NAME when it is one of them)."),
    base_url: str | None = typer.Option(None, "--base-url", help="The API base URL, as the official SDK of that type takes it."),
    no_key: bool = typer.Option(False, "--no-key", help="This backend needs no API key: any stored key (and api_key_env) is dropped."),
) -> None:
    """Add or update backend NAME; the key is read from a hidden prompt, or from stdin when piped."""
    btype = btype or (name if name in KINDS else None)
    if btype not in KINDS:
        raise MlxgwError(f"--type is required for backend {name!r} (one of: {', '.join(KINDS)})")
    if name == "local":
        raise MlxgwError("'local' is the built-in MLX backend and takes no credentials")
    key = None if no_key else _read_key(name)
    ws = Workspace.open()
    opened = ws.last_sync
    # One lock over the config edit and the key change: a daemon reloading in between must not see
    # the new URL with the old key.
    with home_lock():
        with ws.edit() as editor:
            editor.set_backend(name, btype, base_url, keyless=no_key)
        backend = ws.settings.backends[name]
        if key is None:
            credentials.clear_key(name)
        else:
            credentials.upsert(name, backend.type, backend.base_url, key, ws.vault)
        bump_generation()
    # This backend's key was just replaced or removed, so a new URL sends it no old key.
    for report in (opened, ws.last_sync):
        note_sync(report, skip=name)
    what = "without a key" if no_key else f"key {credentials.mask(key)}"
    console.print(f"saved backend [bold]{name}[/] ({btype}, {escape(backend.base_url)}) {what}", highlight=False)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List backends with their masked keys."""
    ws = open_workspace()
    rows = []
    for row in credentials.listing():
        backend = ws.settings.backends.get(row.backend)
        source = "stored" if row.encrypted_key else ("env " + backend.api_key_env if backend and backend.api_key_env else "none")
        rows.append({
            "name": row.backend,
            "type": row.type,
            "base_url": row.base_url,
            "key": row.key_hint if row.encrypted_key else None,
            "key_source": source,
            "in_config": backend is not None,
            "updated_at": row.updated_at.isoformat(timespec="seconds") + "Z",
        })
    if as_json:
        emit_json(rows)
        return
    table = Table("name", "type", "base_url", "key", "in config")
    for r in rows:
        cells = (r["name"], r["type"], r["base_url"], r["key"] or f"({r['key_source']})", "yes" if r["in_config"] else "no")
        table.add_row(*(Text(c) for c in cells))  # URLs and env names are text, not rich markup
    console.print(table)


@app.command("remove")
def remove(name: str = typer.Argument(..., help="The backend to remove.")) -> None:
    """Remove backend NAME from the config and delete its stored key."""
    ws = open_workspace()
    with home_lock():
        with ws.edit() as editor:
            in_config = editor.has_backend(name)
            if in_config:
                editor.remove_backend(name)
        if not credentials.remove(name) and not in_config:
            raise MlxgwError(f"no backend named {name!r}")
        bump_generation()
    note_sync(ws.last_sync)
    console.print(f"removed backend [bold]{escape(name)}[/]", highlight=False)


@app.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every stored key under a new secret key (all or nothing)."""
    ws = open_workspace()
    with home_lock():  # one rotation at a time, and no sync encrypting a key halfway through one
        count = credentials.rotate(ws.vault)
    console.print(f"re-encrypted {count} credential(s) under a new secret key", highlight=False)
