"""Typed keys for everything the app holds."""

from __future__ import annotations

from aiohttp import web

from mlxgw.config import Settings
from mlxgw.workspace import Workspace

SETTINGS = web.AppKey("settings", Settings)
WORKSPACE = web.AppKey("workspace", Workspace)
STARTED = web.AppKey("started", float)
