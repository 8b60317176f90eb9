"""The `mlxgw` command: a thin skin of Typer sub-apps over the core modules."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from typer.core import TyperGroup

from mlxgw import __version__
from mlxgw.cli import chat, config_cmd, creds, keys, lifecycle, mappings, models, requests, serve, service
from mlxgw.cli.output import fail
from mlxgw.errors import MlxgwError


class _Root(TyperGroup):
    """Turns every domain error into one line on stderr and exit status 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MlxgwError as exc:
            fail(str(exc))


app = typer.Typer(
    name="mlxgw",
    cls=_Root,
    help="A local-first LLM gateway: OpenAI and Anthropic APIs, local MLX models, cloud failover.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlxgw {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    config: Path | None = typer.Option(
        None, "--config", "-c", envvar="MLXGW_CONFIG", help="Use this config file instead of <home>/config.toml."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    if config is not None:
        os.environ["MLXGW_CONFIG"] = str(config.expanduser().resolve())


app.add_typer(mappings.app, name="map")
app.add_typer(creds.app, name="creds")
app.add_typer(keys.app, name="keys")
app.add_typer(config_cmd.app, name="config")
app.add_typer(models.app, name="models")
app.add_typer(service.app, name="service")
serve.register(app)
lifecycle.register(app)
chat.register(app)
requests.register(app)


def main() -> None:
    app()
