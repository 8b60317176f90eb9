"""`mlxgw config`: where the config is, what it says, and syncing it into the store."""

from __future__ import annotations

import typer
from rich.markup import escape

from mlxgw import config, paths
from mlxgw.cli.output import console, open_workspace

app = typer.Typer(help="The TOML config file (the source of truth).", no_args_is_help=True)


@app.command("path")
def path() -> None:
    """Print the config file's path."""
    print(paths.config_path())


@app.command("show")
def show() -> None:
    """Print the config file."""
    ws = open_workspace()
    print(ws.config_path.read_text(encoding="utf-8"), end="")


@app.command("validate")
def validate() -> None:
    """Check the config without changing anything."""
    target = paths.config_path()
    settings = config.load(target)
    for name in settings.plaintext_keys:
        console.print(f"[yellow]note:[/] backend {escape(repr(name))} has a plaintext api_key; the next sync moves it into the encrypted store", highlight=False)
    console.print(f"{target}: ok ({len(settings.backends)} backend(s), {len(settings.mappings)} mapping(s))", markup=False, highlight=False)


@app.command("sync")
def sync() -> None:
    """Sync the config into the store now (every command does this too)."""
    ws = open_workspace()
    s = ws.settings
    console.print(f"synced {len(s.mappings)} mapping(s) and {len(s.backends)} backend(s) from {ws.config_path}", markup=False, highlight=False)
