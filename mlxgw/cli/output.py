"""Shared rendering helpers for the CLI."""

from __future__ import annotations

import json
import re
import sys
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape

from mlxgw.store.sync import SyncReport
from mlxgw.workspace import Workspace

console = Console()
err_console = Console(stderr=True)

# C0 controls but tab and newline, DEL and C1: rich prints them as they are, and ESC starts
# sequences that recolour, clear or retitle the user's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text from outside (an upstream's error, a logged request) with its control characters shown
    escaped (`\\x1b`), so printing it cannot drive the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(printable(message))}", highlight=False, soft_wrap=True)
    sys.exit(code)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def open_workspace() -> Workspace:
    """Workspace.open(), telling the user what its sync found (e.g. a hand edit that moved a key)."""
    ws = Workspace.open()
    note_sync(ws.last_sync)
    return ws


def note_sync(report: SyncReport, *, skip: str | None = None) -> None:
    """What a sync did that the user should know of; `skip`: a backend whose key the command itself
    has just replaced, so a changed base_url of it is no news."""
    for name in report.keys_moved:
        err_console.print(
            f"[yellow]note:[/] moved the api_key of backend {escape(repr(name))} out of the config into the encrypted store",
            highlight=False,
        )
    for redirect in report.redirected:
        if redirect.backend != skip:
            err_console.print(f"[yellow]warning:[/] {escape(str(redirect))}", highlight=False, soft_wrap=True)
