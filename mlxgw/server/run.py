"""Running the gateway until SIGTERM or SIGINT, then draining it.

The first signal closes the listening socket and lets requests in flight finish, streams included,
for up to `drain_s`; a second signal stops waiting (their connections are closed, which cancels
their handlers and the upstream work). Either way the process exits 0 once the app's resources are
torn down: launchd and systemd then treat it as a stop, not a crash.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from mlxgw import logs
from mlxgw.daemon import DRAIN_S
from mlxgw.daemon.lock import ServeLock
from mlxgw.errors import MlxgwError
from mlxgw.server.app import create_app
from mlxgw.settings import Settings
from mlxgw.workspace import Workspace

log = logging.getLogger("mlxgw")


def run_server(ws: Workspace, settings: Settings, *, drain_s: float = DRAIN_S) -> None:
    # The lock comes first: a second daemon must not even open the first one's log file.
    with ServeLock.acquire() as lock:
        logs.setup(console=sys.stderr.isatty(), level=logs.level_from_env())
        asyncio.run(_serve(ws, settings, lock, drain_s))


async def _serve(ws: Workspace, settings: Settings, lock: ServeLock, drain_s: float) -> None:
    host, port = settings.server.host, settings.server.port
    app = create_app(settings, workspace=ws)
    # aiohttp's keep-alive timer closes a connection whose next request head is not complete when it
    # fires, counted from the connection's start or its last answer, and data does not push it back:
    # so it bounds a half-sent head (slowloris) as well as an idle connection.
    runner = web.AppRunner(
        app, access_log=None, handler_cancellation=True, shutdown_timeout=drain_s, handle_signals=False,
        keepalive_timeout=settings.server.header_timeout_s,
    )
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise MlxgwError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        lock.announce(host, port)
        log.info("listening on http://%s:%s (pid %d)", host, port, os.getpid())
        print(f"mlxgw listening on http://{host}:{port}", flush=True)
        await _until_signalled(runner, drain_s)
    finally:
        await runner.cleanup()
        log.info("stopped")


async def _until_signalled(runner: web.AppRunner, drain_s: float) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if not stopping.is_set():
            log.info("%s: no new connections; requests in flight have up to %.0f s to finish", name, drain_s)
            stopping.set()
            return
        log.warning("%s again: closing the connections still open", name)
        server = runner.server
        for connection in server.connections if server else []:
            connection.force_close()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await stopping.wait()
    # The signal handlers stay installed through runner.cleanup(): the drain is where a second
    # signal matters.
