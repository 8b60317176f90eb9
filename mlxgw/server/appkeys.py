"""Typed keys for everything the app holds."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from mlxgw.dispatch.dispatcher import Dispatcher
from mlxgw.server.catalog import ModelCatalog
from mlxgw.server.metrics import Metrics
from mlxgw.server.state import LiveState
from mlxgw.settings import Settings
from mlxgw.store.request_log import RequestLogWriter
from mlxgw.store.responses import ResponseStore

SETTINGS = web.AppKey("settings", Settings)  # as the server started: its address
STATE = web.AppKey("state", LiveState)  # the live view: settings, backends, mappings, client keys
STARTED = web.AppKey("started", float)
SESSION = web.AppKey("session", aiohttp.ClientSession)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
REQUEST_LOG = web.AppKey("request_log", RequestLogWriter)
CATALOG = web.AppKey("catalog", ModelCatalog)
RESPONSES = web.AppKey("responses", ResponseStore)  # stored Responses answers
METRICS = web.AppKey("metrics", Metrics)  # this app's Prometheus registry
