from __future__ import annotations

from typer.testing import CliRunner

from mlxgw.cli import app

runner = CliRunner()


def cli(*args: str, input: str | None = None, ok: bool = True):
    result = runner.invoke(app, list(args), input=input)
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result
