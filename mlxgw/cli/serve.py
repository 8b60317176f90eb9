"""`mlxgw serve`: run the gateway in the foreground."""

from __future__ import annotations

import typer

from mlxgw.errors import MlxgwError


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def serve(
    host: str | None = typer.Option(None, "--host", help="Address to bind (default: the config's [server] host)."),
    port: int | None = typer.Option(None, "--port", help="Port to bind (default: the config's [server] port)."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback address while no client key exists."),
) -> None:
    """Run the gateway in the foreground."""
    from mlxgw.server.run import run_server
    from mlxgw.store import client_keys
    from mlxgw.workspace import Workspace

    ws = Workspace.open()
    settings = ws.settings.with_address(host, port)
    if not is_loopback(settings.server.host) and not client_keys.listing() and not insecure:
        raise MlxgwError(
            f"refusing to listen on {settings.server.host} with no client keys: anyone on the network could use "
            "your backends. Create one with `mlxgw keys create NAME`, or pass --insecure."
        )
    run_server(ws, settings)
