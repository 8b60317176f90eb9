"""`mlxgw serve`: run the gateway in the foreground."""

from __future__ import annotations

import typer

from mlxgw.daemon import DRAIN_S
from mlxgw.errors import MlxgwError
from mlxgw.settings import Settings

HOST_HELP = "Address to bind (default: the config's [server] host)."
PORT_HELP = "Port to bind (default: the config's [server] port)."
DRAIN_HELP = "On SIGTERM/Ctrl-C, how long requests in flight may take to finish (a second signal: at once)."


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def check_exposure(settings: Settings, insecure: bool) -> None:
    from mlxgw.store import client_keys

    if not settings.server.loopback and not client_keys.listing() and not insecure:
        raise MlxgwError(
            f"refusing to listen on {settings.server.host} with no client keys: anyone on the network could use "
            "your backends. Create one with `mlxgw keys create NAME`, or pass --insecure."
        )


def serve(
    host: str | None = typer.Option(None, "--host", help=HOST_HELP),
    port: int | None = typer.Option(None, "--port", help=PORT_HELP),
    insecure: bool = typer.Option(False, "--insecure", help="Serve everyone on a non-loopback address while no client key exists."),
    drain_timeout: float = typer.Option(DRAIN_S, "--drain-timeout", min=0, help=DRAIN_HELP),
) -> None:
    """Run the gateway in the foreground (logs to <home>/logs/mlxgw.log, and to the terminal)."""
    from mlxgw.server.run import run_server
    from mlxgw.workspace import Workspace

    ws = Workspace.open()
    settings = ws.settings.with_address(host, port, insecure=insecure)
    check_exposure(settings, insecure)
    run_server(ws, settings, drain_s=drain_timeout)
