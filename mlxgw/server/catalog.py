"""The model ids cloud backends offer, for `GET /v1/models`: a wildcard mapping such as `gpt-*`
lists the upstream models it would route. Fetched on demand, cached, and never in the way: a
backend that does not answer within a few seconds is simply left out."""

from __future__ import annotations

import asyncio
import logging
import time
from fnmatch import fnmatchcase

from mlxgw.backends.base import ListsModels
from mlxgw.backends.registry import Registry
from mlxgw.dispatch.route_table import RouteTable
from mlxgw.errors import UpstreamError
from mlxgw.settings import is_pattern

log = logging.getLogger("mlxgw.catalog")

FRESH_S = 300.0  # a model list is good for five minutes
RETRY_S = 30.0  # a backend whose list failed is asked again after this
FETCH_TIMEOUT_S = 5.0


class ModelCatalog:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._lists: dict[str, tuple[float, list[str]]] = {}  # backend -> (expires, ids)
        self._fetching: dict[str, asyncio.Task[list[str]]] = {}

    async def listed(self, routes: RouteTable) -> list[str]:
        """The exact names mappings offer, then the upstream ids each wildcard mapping routes."""
        names = routes.listed()
        wildcard = [m for m in routes.ordered if is_pattern(m.pattern) and not m.model]
        backends = sorted({m.backend for m in wildcard if isinstance(self.registry.get(m.backend), ListsModels)})
        offered = dict(zip(backends, await asyncio.gather(*(self._ids(b) for b in backends)), strict=True))
        seen = set(names)
        for mapping in wildcard:
            for model_id in offered.get(mapping.backend, []):
                # Listed only where this mapping is what a request for the id would actually reach.
                if model_id not in seen and fnmatchcase(model_id, mapping.pattern) and routes.resolve(model_id).mapping is mapping:
                    seen.add(model_id)
                    names.append(model_id)
        return names

    async def _ids(self, backend: str) -> list[str]:
        cached = self._lists.get(backend)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        task = self._fetching.get(backend)
        if task is None:
            task = self._fetching[backend] = asyncio.create_task(self._fetch(backend))
            task.add_done_callback(lambda _t, b=backend: self._fetching.pop(b, None))
        return await asyncio.shield(task)

    async def _fetch(self, backend: str) -> list[str]:
        try:
            async with asyncio.timeout(FETCH_TIMEOUT_S):
                ids = await self.registry.get(backend).list_models()
            self._lists[backend] = (time.monotonic() + FRESH_S, ids)
        except (UpstreamError, TimeoutError) as exc:
            log.info("model list of %s unavailable: %s", backend, getattr(exc, "message", "timed out"))
            ids = cached[1] if (cached := self._lists.get(backend)) else []
            self._lists[backend] = (time.monotonic() + RETRY_S, ids)
        return ids
