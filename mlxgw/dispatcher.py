"""From a canonical request to an answer: resolve the model, walk the chain of attempts, and hand
the caller a stream that has already started (so a failure before the first byte can fail over)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from mlxgw import routing
from mlxgw.backends.base import Item, is_meaningful
from mlxgw.backends.registry import Registry
from mlxgw.canonical import ChatRequest
from mlxgw.config import MappingSettings
from mlxgw.errors import GatewayError, UpstreamError

log = logging.getLogger("mlxgw.dispatch")


@dataclass
class AttemptRecord:
    backend: str
    model: str
    error: str | None = None  # why it failed: an error kind, or None for the one that served


@dataclass
class Opened:
    """An answer whose first meaningful item (or, unstreamed, whose whole body) has arrived."""

    backend: str
    model: str
    head: list[Item]
    tail: AsyncIterator[Item]
    attempts: list[AttemptRecord] = field(default_factory=list)

    async def aclose(self) -> None:
        await self.tail.aclose()


async def _empty() -> AsyncIterator[Item]:
    return
    yield


class Dispatcher:
    def __init__(self, registry: Registry, mappings: Callable[[], list[MappingSettings]]) -> None:
        self.registry = registry
        self.mappings = mappings

    def route(self, model: str) -> routing.Route:
        route = routing.resolve(model, self.mappings())
        if route is None:
            known = routing.listed_models(self.mappings())
            hint = f"; available: {', '.join(known)}" if known else "; no models are mapped yet (see `mlxgw map add`)"
            raise GatewayError("not_found", f"model {model!r} is not mapped{hint}", param="model", code="model_not_found")
        return route

    async def open(self, request: ChatRequest) -> Opened:
        route = self.route(request.model)
        attempts: list[AttemptRecord] = []
        last: UpstreamError | None = None
        for attempt in route.chain:
            record = AttemptRecord(attempt.backend, attempt.model)
            attempts.append(record)
            backend = self.registry.get(attempt.backend)
            if backend is None:
                record.error = "unavailable"
                last = UpstreamError("unavailable", f"backend {attempt.backend} is not configured", backend=attempt.backend, retryable=True)
                continue
            stream = backend.stream(request, attempt.model).__aiter__()
            try:
                head = await _until_meaningful(stream, request.stream)
            except UpstreamError as exc:
                await stream.aclose()
                record.error = exc.code or exc.kind
                last = exc
                if not exc.retryable:
                    raise _client_facing(exc) from None
                log.info("attempt %s:%s failed (%s), trying the next", attempt.backend, attempt.model, exc.message)
                continue
            except BaseException:
                await stream.aclose()
                raise
            return Opened(attempt.backend, attempt.model, head, stream if request.stream else _empty(), attempts)
        assert last is not None
        raise _exhausted(last, attempts)


async def _until_meaningful(stream: AsyncIterator[Item], streaming: bool) -> list[Item]:
    """Read ahead until content starts (streaming) or to the end (not streaming)."""
    head: list[Item] = []
    async for item in stream:
        head.append(item)
        if streaming and is_meaningful(item):
            break
    return head


def _client_facing(exc: UpstreamError) -> GatewayError:
    """A request-caused upstream error, as the client should see it.

    An upstream's 401/403 is the gateway's configuration problem, not the client's credentials.
    """
    if exc.status in (401, 403):
        return UpstreamError(
            "bad_gateway",
            f"backend {exc.backend} rejected mlxgw's credentials (HTTP {exc.status}: {exc.message}); "
            f"check `mlxgw creds set {exc.backend}`",
            backend=exc.backend,
        )
    return exc


def _exhausted(last: UpstreamError, attempts: list[AttemptRecord]) -> GatewayError:
    if len(attempts) == 1:
        return _client_facing(last)
    tried = ", ".join(f"{a.backend}:{a.model} ({a.error})" for a in attempts)
    return UpstreamError("bad_gateway", f"every backend failed: {tried}; last: {last.message}", backend=last.backend)
