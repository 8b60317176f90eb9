"""Running the app in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

from aiohttp import web

from mlxgw.config import Settings
from mlxgw.server.app import create_app
from mlxgw.workspace import Workspace

log = logging.getLogger("mlxgw")


def run_server(ws: Workspace, settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, workspace=ws)
    host, port = settings.server.host, settings.server.port
    print(f"mlxgw listening on http://{host}:{port}", flush=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None, shutdown_timeout=30, handler_cancellation=True)
