"""The `mlxgw` command: a thin skin of Typer sub-apps over the core modules."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from peewee import DatabaseError
from typer.core import TyperGroup

from mlxgw import __version__, paths
from mlxgw.cli import (
    chat,
    config_cmd,
    creds,
    keys,
    launch,
    lifecycle,
    mappings,
    models,
    request_log,
    serve,
    service,
    ui,
)
from mlxgw.cli.output import fail
from mlxgw.config import ensure_config
from mlxgw.errors import MlxgwError
from mlxgw.store.database import store_problem


class _Root(TyperGroup):
    """Turns every domain error (and a store that cannot be used) into one line on stderr and exit
    status 1, never a traceback; and takes `--config` wherever it is given (`mlxgw map list
    --config x.toml` too)."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, _config_first(args))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MlxgwError as exc:
            fail(str(exc))
        except DatabaseError as exc:  # the store went bad (or stayed busy) after it was opened
            fail(str(store_problem(paths.db_path(), exc)))


def _config_first(args: list[str]) -> list[str]:
    """Move `--config PATH` / `-c PATH` / `--config=PATH` in front of the command, where it is parsed."""
    rest = list(args)
    for i, arg in enumerate(rest):
        if arg == "--":
            break
        if arg == "launch" and all(a.startswith("-") for a in rest[:i]):
            break  # what follows is the agent's own (Codex's `-c` is its config, not ours)
        if arg.startswith("--config="):
            return [rest.pop(i), *rest]
        if arg in ("--config", "-c") and i + 1 < len(rest):
            value = rest.pop(i + 1)
            rest.pop(i)
            return ["--config", value, *rest]
    return rest


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
    # Whatever the first command is, the commented defaults exist afterwards: `config path` then
    # names a file an editor opens with every setting explained.
    ensure_config(paths.config_path())


app.add_typer(mappings.app, name="map")
app.add_typer(creds.app, name="creds")
app.add_typer(keys.app, name="keys")
app.add_typer(config_cmd.app, name="config")
app.add_typer(models.app, name="models")
app.add_typer(service.app, name="service")
serve.register(app)
lifecycle.register(app)
launch.register(app)
chat.register(app)
request_log.register(app)
ui.register(app)


def main() -> None:
    app()
