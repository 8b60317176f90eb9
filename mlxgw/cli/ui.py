"""`mlxgw ui`: the running gateway's dashboard, in the browser."""

from __future__ import annotations

import webbrowser

import typer

from mlxgw.cli.output import console, fail, open_workspace
from mlxgw.daemon import calls

PRINT_HELP = "Only print the dashboard's address (e.g. to open it on another machine)."


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(print_only: bool = typer.Option(False, "--print", help=PRINT_HELP)) -> None:
    """Open the dashboard of the running gateway in a browser; starts nothing."""
    settings = open_workspace().settings
    url = calls.base_url(settings) + "/ui"
    if not calls.running(settings):
        fail(f"no mlxgw daemon is answering at {calls.base_url(settings)}; start one with `mlxgw start`, then open {url}")
    if print_only:
        console.print(url, markup=False, highlight=False, soft_wrap=True)
    elif webbrowser.open(url):
        console.print(f"opened {url} in your browser", markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(f"no browser could be opened here: open {url}", markup=False, highlight=False, soft_wrap=True)
