"""`mlxgw service`: run the gateway at login, restarted after a crash (launchd or systemd --user)."""

from __future__ import annotations

import sys

import typer

from mlxgw.cli.output import console, emit_json, err_console

app = typer.Typer(
    help="Run the gateway as a service: started at login, restarted after a crash (launchd / systemd --user).",
    no_args_is_help=True,
)

PLATFORM_HELP = "macos (a launchd agent) or linux (a systemd user unit); default: this machine's."


@app.command("install")
def install(
    platform: str | None = typer.Option(None, "--platform", help=PLATFORM_HELP),
    print_only: bool = typer.Option(False, "--print", help="Show the file that would be installed; change nothing."),
) -> None:
    """Write the service file for this mlxgw and this home, and load it (again: replaces it)."""
    from mlxgw.daemon import service

    chosen = service.check_platform(platform)
    if print_only:
        file = service.service_file(chosen)
        err_console.print(f"[dim]{file.path}:[/]", highlight=False, soft_wrap=True)
        sys.stdout.write(file.content)  # as is: it may be redirected into place by hand
        return
    file = service.install(chosen)
    console.print(f"installed and started {file.path}", highlight=False, soft_wrap=True)
    console.print("[dim]`mlxgw status` shows the daemon; `mlxgw service uninstall` removes the service[/]")


@app.command("uninstall")
def uninstall(platform: str | None = typer.Option(None, "--platform", help=PLATFORM_HELP)) -> None:
    """Stop the service and remove its file."""
    from mlxgw.daemon import service

    file = service.uninstall(service.check_platform(platform))
    console.print(f"removed {file.path}" if file else "the service was not installed", highlight=False, soft_wrap=True)


@app.command("status")
def status(
    platform: str | None = typer.Option(None, "--platform", help=PLATFORM_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Whether the service is installed and what its manager says about it."""
    from mlxgw.daemon import service

    report = service.status(service.check_platform(platform))
    if as_json:
        emit_json(report)
        return
    if not report["installed"]:
        console.print(f"not installed ({report['path']}); `mlxgw service install` installs it", highlight=False, soft_wrap=True)
        return
    loaded = "loaded" if report["loaded"] else "not loaded"
    console.print(f"installed at {report['path']}: {loaded}, {report['state']}", highlight=False, soft_wrap=True)
