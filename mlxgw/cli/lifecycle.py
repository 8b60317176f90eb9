"""`mlxgw start / stop / restart / status / logs`: the gateway as a background daemon."""

from __future__ import annotations

import datetime as dt
import sys
from contextlib import nullcontext

import typer
from rich.markup import escape
from rich.text import Text

from mlxgw.cli.output import console, emit_json, err_console, fail, open_workspace
from mlxgw.cli.serve import DRAIN_HELP, HOST_HELP, PORT_HELP, check_exposure

INSECURE_HELP = "Allow a non-loopback address while no client key exists."
WAIT_HELP = "How long to wait for the daemon to answer."
STOP_HELP = "How long requests in flight may take to finish before they are cut off."


def register(app: typer.Typer) -> None:
    app.command("start")(start)
    app.command("stop")(stop)
    app.command("restart")(restart)
    app.command("status")(status)
    app.command("logs")(logs_)


def start(
    host: str | None = typer.Option(None, "--host", help=HOST_HELP),
    port: int | None = typer.Option(None, "--port", help=PORT_HELP),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    drain_timeout: float | None = typer.Option(None, "--drain-timeout", min=0, help=DRAIN_HELP),
    wait: float = typer.Option(60.0, "--wait", min=1, help=WAIT_HELP),
) -> None:
    """Start the gateway in the background; returns once it answers."""
    _start(host, port, insecure, drain_timeout, wait)


def _start(host: str | None, port: int | None, insecure: bool, drain_timeout: float | None, wait: float) -> None:
    from mlxgw import logs
    from mlxgw.daemon import control

    # Checked here too, so that a bad config or address fails with its own message, not a log excerpt.
    settings = open_workspace().settings.with_address(host, port)
    check_exposure(settings, insecure)
    argv = control.serve_argv(host, port, insecure, drain_timeout)
    try:
        with err_console.status("starting mlxgw…") if err_console.is_terminal else nullcontext():
            info = control.start(argv, wait_s=wait)
    except control.StartFailed as exc:
        if exc.output:
            err_console.print(f"[dim]last lines of {escape(str(logs.output_path()))}:[/]", highlight=False, soft_wrap=True)
            for line in exc.output:
                err_console.print(f"  {line}", style="dim", markup=False, highlight=False, soft_wrap=True)
        fail(str(exc))
    console.print(f"mlxgw started (pid {info.pid}) on {info.url}; log: {logs.log_path()}", markup=False, highlight=False, soft_wrap=True)


def stop(timeout: float = typer.Option(30.0, "--timeout", min=0, help=STOP_HELP)) -> None:
    """Stop the background gateway gracefully: no new requests, those in flight finish."""
    _stop(timeout)


def _stop(timeout: float) -> None:
    from mlxgw.daemon import control

    with err_console.status("stopping mlxgw: letting requests in flight finish…") if err_console.is_terminal else nullcontext():
        stopped = control.stop(timeout_s=timeout)
    if stopped is None:
        console.print("mlxgw is not running")
        return
    outcome = {
        "drained": "stopped",
        "cut": f"stopped; requests still running after {timeout:g} s were cut off",
        "killed": "did not exit in time and was killed",
    }[stopped.how]
    console.print(f"mlxgw (pid {stopped.info.pid}) {outcome} ({stopped.seconds:.1f} s)", highlight=False, soft_wrap=True)


def restart(
    host: str | None = typer.Option(None, "--host", help=HOST_HELP + " Default: the address it had."),
    port: int | None = typer.Option(None, "--port", help=PORT_HELP + " Default: the port it had."),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    drain_timeout: float | None = typer.Option(None, "--drain-timeout", min=0, help=DRAIN_HELP),
    timeout: float = typer.Option(30.0, "--timeout", min=0, help=STOP_HELP),
    wait: float = typer.Option(60.0, "--wait", min=1, help=WAIT_HELP),
) -> None:
    """Stop the background gateway (gracefully) and start it again."""
    from mlxgw.daemon.lock import holder

    previous = holder()
    if previous is not None and previous.listening:
        host = host or previous.host
        port = port or previous.port
    _stop(timeout)
    _start(host, port, insecure, drain_timeout, wait)


def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Is the gateway running: pid, address, uptime, local models, breakers, recent requests."""
    from mlxgw import logs
    from mlxgw.daemon import control

    report = control.status()
    report["requests_last_hour"] = _requests_last_hour()
    report["log"] = str(logs.log_path())
    if as_json:
        emit_json(report)
        return
    if report.get("stale_pid_removed") is not None:
        err_console.print(f"[dim]removed a stale pid file (process {report['stale_pid_removed']} is gone)[/]")
    if not report["running"]:
        console.print(
            "mlxgw is [bold]not running[/]. Start it with `mlxgw start` (background) or `mlxgw serve` (foreground).",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(_panel(report))


def _requests_last_hour() -> dict[str, int]:
    from mlxgw.store import request_log
    from mlxgw.store.tables import utcnow

    open_workspace()
    return request_log.counts(utcnow() - dt.timedelta(hours=1))


def _panel(report: dict):
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("status", f"[green]running[/] (pid {report['pid']})")
    if report.get("url"):
        grid.add_row("address", Text(report["url"]))
    if not report["answering"]:
        grid.add_row("", "[yellow]not answering yet (starting, or draining)[/]")
    else:
        grid.add_row("uptime", _duration(report.get("uptime_s") or 0))
        grid.add_row("version", str(report.get("version")))
        grid.add_row("local models", _local(report.get("local")))
        grid.add_row("breakers", _breakers(report.get("breakers") or {}))
        for name, error in (report.get("backend_errors") or {}).items():
            grid.add_row("", Text(f"{name}: {error}", style="red"))
    requests = report["requests_last_hour"]
    errors = f" ({requests['errors']} failed)" if requests["errors"] else ""
    plural = "" if requests["total"] == 1 else "s"
    grid.add_row("last hour", f"{requests['total']} request{plural}{errors}")
    grid.add_row("log", Text(report["log"]))
    return Panel(grid, title="mlxgw", expand=False)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours or days else []
    return " ".join([*parts, f"{minutes}m", f"{secs}s"])


def _local(local: dict | None) -> str:
    if local is None:
        return "no local backend"
    if not local.get("running"):
        return "[dim]worker not started (it starts with the first local request)[/]"
    models = local.get("models") or []
    if not models:
        return f"worker pid {local.get('pid')}, no model loaded"
    names = ", ".join(
        escape(m["name"]) + (f" ({m['memory_bytes'] / 2**20:.1f} MiB)" if m.get("memory_bytes") else "") for m in models
    )
    return f"{names} [dim](worker pid {local.get('pid')})[/]"


def _breakers(breakers: dict[str, dict]) -> str:
    if not breakers:
        return "[dim]none used yet[/]"
    colour = {"closed": "green", "open": "red", "half_open": "yellow"}
    lines = []
    for name, b in breakers.items():
        state = b.get("state", "?")
        extra = f", retry in {b['retry_in_s']:.0f} s" if state == "open" and "retry_in_s" in b else ""
        failures = f", {b['consecutive_failures']} failures" if b.get("consecutive_failures") else ""
        lines.append(f"{escape(name)}: [{colour.get(state, 'white')}]{escape(state)}[/]{failures}{extra}")
    return "\n".join(lines)


def logs_(
    tail: int = typer.Option(40, "--tail", "-n", help="How many recent lines to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines as they come."),
) -> None:
    """The daemon's own log (`time level logger message` lines); `mlxgw log` shows the requests."""
    from mlxgw import logs

    path = logs.log_path()
    lines = logs.tail(path, tail)
    if not lines and not path.exists():
        err_console.print(f"[dim]no log yet at {escape(str(path))}[/]", highlight=False, soft_wrap=True)
    for line in lines:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if not follow:
        return
    try:
        for line in logs.follow(path):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return
