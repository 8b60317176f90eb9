"""Shared rendering helpers for the CLI."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def note_sync(report) -> None:
    for name in report.keys_moved:
        err_console.print(
            f"[yellow]note:[/] moved the api_key of backend {escape(repr(name))} out of the config into the encrypted store",
            highlight=False,
        )
