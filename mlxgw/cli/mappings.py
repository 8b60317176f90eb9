"""`mlxgw map`: which backend answers which model name."""

from __future__ import annotations

import enum

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mlxgw.cli.output import console, emit_json, note_sync, open_workspace
from mlxgw.dispatch import route_table
from mlxgw.errors import MlxgwError
from mlxgw.settings import BALANCES, MappingSettings, Target
from mlxgw.store.mappings import load_mappings

Balance = enum.StrEnum("Balance", {name: name for name in BALANCES})


app = typer.Typer(help="Map model names (fnmatch patterns) to backends and fallback chains.", no_args_is_help=True)


def _mapping_json(m: MappingSettings) -> dict:
    return {
        "pattern": m.pattern,
        "backend": m.backend,
        "model": m.model,
        "fallbacks": [str(t) for t in m.fallbacks],
        "priority": m.priority,
        "enabled": m.enabled,
        "max_output_tokens": m.max_output_tokens,
        "over_budget": str(m.over_budget) if m.over_budget else None,
        "backends": list(m.spread),
        "balance": m.balance if m.backends else None,
    }


def _backend_cell(m: MappingSettings) -> str:
    return f"{', '.join(m.backends)} ({m.balance})" if m.backends else m.backend


@app.command("add")
def add(
    pattern: str = typer.Argument(..., help="fnmatch pattern over the requested model name, e.g. 'gpt-*'."),
    backend: str = typer.Argument(..., help="'local' (the MLX worker) or a configured cloud backend."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model to ask the backend for (local: a directory or HF repo id)."),
    fallback: list[str] = typer.Option([], "--fallback", "-f", help="BACKEND or BACKEND:MODEL to try next; repeatable, in order."),
    priority: int = typer.Option(0, "--priority", "-p", help="Higher wins when several patterns match."),
    replace: bool = typer.Option(False, "--replace", help="Replace an existing mapping with this pattern."),
    max_output_tokens: int | None = typer.Option(
        None, "--max-output-tokens", min=1, help="The model's output limit: no attempt asks for more."
    ),
    over_budget: str | None = typer.Option(
        None, "--over-budget", help="local:MODEL answers client keys over their budget (else they get 429)."
    ),
    spread: list[str] = typer.Option(
        [], "--spread", "-s", help="More backends equivalent to BACKEND that share its load (NAME or NAME,NAME); repeatable."
    ),
    balance: Balance = typer.Option(
        BALANCES[0], "--balance", help="How a spread mapping picks each request's first backend."
    ),
) -> None:
    """Add a mapping from PATTERN to BACKEND (and the backends it is spread over)."""
    ws = open_workspace()
    others = [name.strip() for text in spread for name in text.split(",") if name.strip()]
    try:
        targets = tuple(Target.parse(f) for f in fallback)
        spare = Target.parse(over_budget) if over_budget else None
    except ValueError as exc:
        raise MlxgwError(str(exc)) from None
    with ws.edit() as editor:
        mapping = MappingSettings(
            pattern, backend, model, targets, priority, max_output_tokens=max_output_tokens, over_budget=spare,
            backends=(backend, *others) if others else (), balance=str(balance),
        )
        editor.add_mapping(mapping, replace_existing=replace)
    note_sync(ws.last_sync)
    served_by = " | ".join(str(Target(name, model)) for name in mapping.spread)
    how = f" ({balance})" if others else ""
    console.print(f"mapped [bold]{escape(pattern)}[/] → {escape(served_by)}{how}", highlight=False)


@app.command("remove")
def remove(pattern: str = typer.Argument(..., help="The pattern of the mapping to remove.")) -> None:
    """Remove the mapping with PATTERN."""
    ws = open_workspace()
    with ws.edit() as editor:
        editor.remove_mapping(pattern)
    note_sync(ws.last_sync)
    console.print(f"removed mapping [bold]{escape(pattern)}[/]", highlight=False)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List mappings in the order they are matched."""
    open_workspace()
    mappings = route_table.ordered(load_mappings())
    disabled = [m for m in load_mappings() if not m.enabled]
    if as_json:
        emit_json([_mapping_json(m) for m in mappings + disabled])
        return
    table = Table("pattern", "backend", "model", "fallbacks", "over budget", "priority", "enabled")
    for m in mappings + disabled:
        cells = (
            m.pattern, _backend_cell(m), m.model or "(as requested)", ", ".join(str(t) for t in m.fallbacks) or "—",
            str(m.over_budget) if m.over_budget else "—", str(m.priority), "yes" if m.enabled else "no",
        )
        table.add_row(*(Text(c) for c in cells))  # patterns like "[ab]*" are text, not rich markup
    console.print(table)


@app.command("resolve")
def resolve(
    model: str = typer.Argument(..., help="A model name as a client would request it."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show which mapping answers MODEL and the ordered chain of attempts."""
    open_workspace()
    route = route_table.resolve(model, load_mappings())
    if route is None:
        raise MlxgwError(f"no mapping matches {model!r}")
    chain = [{"backend": a.backend, "model": a.model} for a in route.chain]
    if as_json:
        emit_json({"model": model, "mapping": route.mapping.pattern, "chain": chain})
        return
    console.print(f"[bold]{escape(model)}[/] matches mapping [bold]{escape(route.mapping.pattern)}[/]", highlight=False)
    if route.equivalent > 1:
        console.print(f"  any of the first {route.equivalent} may go first ({route.mapping.balance}); the others follow")
    for i, a in enumerate(route.chain, 1):
        console.print(f"  {i}. {a.backend} → {a.model}", markup=False, highlight=False)
