"""`mlxgw log` and `mlxgw stats`: what the gateway did with each request."""

from __future__ import annotations

import json
import time

import typer
from rich.table import Table
from rich.text import Text

from mlxgw.cli.output import console, open_workspace, printable
from mlxgw.errors import MlxgwError
from mlxgw.store import request_log
from mlxgw.store.database import shared
from mlxgw.store.tables import RequestLog, utcnow

FOLLOW_POLL_S = 0.5


def register(app: typer.Typer) -> None:
    app.command("log")(log_)
    app.command("stats")(stats)


def _print_rows(rows: list[RequestLog], as_json: bool, table: Table | None) -> None:
    replicas = shared()  # replicas log into one shared store: say which one served each request
    for r in rows:
        if as_json:
            print(json.dumps(request_log.as_json(r)), flush=True)
            continue
        served = f"{r.backend}:{r.model}" if r.backend else "—"
        if r.sticky:  # its session had failed over to this backend: it went there first
            served += " (sticky)"
        tried = " → ".join(f"{a['backend']}({a['error']})" for a in json.loads(r.attempts) if a["error"])
        tokens = f"{r.input_tokens or 0}/{r.output_tokens or 0}" if r.input_tokens or r.output_tokens else "—"
        style = "red" if r.status >= 400 or r.error_kind else None
        cells = tuple(printable(c) for c in (
            r.time.strftime("%H:%M:%S"), r.protocol, r.requested_model, served, tried or "—", str(r.status),
            f"{r.latency_ms:.0f}" if r.latency_ms is not None else "—", tokens,
            str(r.cached_tokens) if r.cached_tokens is not None else "—", _usd(r.cost_usd), r.error_kind or "",
            *((r.replica or "—",) if replicas else ()),
        ))
        # Model names come from clients, error codes from upstreams: "[/oops]" is text to show, not
        # rich markup to interpret, and an escape sequence is shown escaped, not sent to the terminal.
        if table:
            table.add_row(*(Text(c) for c in cells), style=style)
        else:
            console.print("  ".join(cells), style=style, markup=False, highlight=False)


def log_(
    tail: int = typer.Option(20, "--tail", "-n", help="How many recent requests to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new requests as they come."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Show recent requests: what was asked, which backend answered, what failed on the way."""
    open_workspace()
    rows = request_log.tail(tail)
    if not as_json and not follow:
        table = Table()
        for name in ("time", "api", "model", "served by", "failed attempts", "status", "ms", "tokens in/out", "cached", "cost", "error",
                     *(("replica",) if shared() else ())):
            table.add_column(name, overflow="fold")
        _print_rows(rows, False, table)
        console.print(table)
    else:
        _print_rows(rows, as_json, None)
    if not follow:
        return
    last = rows[-1].id if rows else 0
    try:
        while True:
            time.sleep(FOLLOW_POLL_S)
            new = request_log.tail(1000, after_id=last)
            if new:
                _print_rows(new, as_json, None)
                last = new[-1].id
    except KeyboardInterrupt:
        return


def _usd(cost: float | None) -> str:
    """A cost to the cent, or to four places below one cent; "—" when no price is known."""
    if cost is None:
        return "—"
    return f"${cost:.2f}" if cost >= 0.01 or cost == 0 else f"${cost:.4f}"


def stats(
    since: str = typer.Option("1h", "--since", help="Window to summarise, e.g. 15m, 1h, 7d."),
    by: list[str] = typer.Option(
        [], "--by", help="Group by backend, model, key or day (UTC); repeatable, e.g. --by key --by day. Default: backend."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Per-backend (or --by model, key, day) counts, failover rate, latency percentiles, tokens, the
    cache hit ratio (cached / all prompt tokens) and cost."""
    groups = tuple(dict.fromkeys(by)) or ("backend",)
    if unknown := [g for g in groups if g not in request_log.GROUPS]:
        raise MlxgwError(f"bad --by {unknown[0]!r}: use {', '.join(request_log.GROUPS)}")
    open_workspace()
    window = request_log.parse_window(since)
    summary = request_log.summary(utcnow() - window, groups)
    if as_json:
        body = {"since": since, "backends": summary} if not by else {"since": since, "by": list(groups), "groups": summary}
        print(json.dumps(body, indent=2))
        return
    if not summary:
        console.print(f"no requests in the last {since}")
        return
    table = Table(
        *groups, "requests", "errors", "failover rate", "p50 ms", "p95 ms", "tokens in", "tokens out", "cached",
        "cache hits", title=f"last {since}",
    )
    table.add_column("cost", no_wrap=True)  # the figure people come for: whole, while other columns wrap
    for s in summary:
        # Requests of unknown cost count $0 in the sum: marked, so that a low total is not taken at its word.
        cost = _usd(s["cost_usd"]) + (f" +{s['unknown_cost']} unknown" if s["unknown_cost"] else "")
        table.add_row(
            *(Text(printable(s[g])) for g in groups), str(s["requests"]), str(s["errors"]), f"{s['failover_rate']:.1%}",
            f"{s['p50_ms']:.0f}" if s["p50_ms"] is not None else "—", f"{s['p95_ms']:.0f}" if s["p95_ms"] is not None else "—",
            str(s["input_tokens"]), str(s["output_tokens"]), str(s["cached_tokens"]),
            f"{s['cache_hit_ratio']:.1%}" if s["cache_hit_ratio"] is not None else "—", cost,
        )
    console.print(table)
