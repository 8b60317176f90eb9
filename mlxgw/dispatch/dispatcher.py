"""From a canonical request to an answer that has started.

The requested model picks a mapping and its chain of (backend, model) attempts; a mapping spread
over equivalent backends has the balancer put this request's pick among them first (`balancer`),
and a session that failed over recently goes to the fallback that answered it first (`sticky`).
Each attempt is tried up to `max_tries` times with exponential backoff (full jitter, honouring
Retry-After), behind the backend's circuit breaker. An attempt has succeeded once its first meaningful item arrived
(for a stream) or its whole answer did; only then is anything sent to the client, so every failure
before that point can still move on to the next attempt. The whole request, retries, fallbacks and
streaming included, never outlives `request_deadline_s`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from mlxgw.backends.base import Item, RawFrame, is_meaningful
from mlxgw.backends.registry import Registry
from mlxgw.canonical import ChatRequest
from mlxgw.dispatch.balancer import Balancer
from mlxgw.dispatch.breaker import Breaker, Breakers, Permit
from mlxgw.dispatch.client_names import in_client_names
from mlxgw.dispatch.output_check import OutputCheck
from mlxgw.dispatch.pacing import as_written, held, nothing, paced, watched
from mlxgw.dispatch.retries import retry_limits, with_retries
from mlxgw.dispatch.route_table import Attempt, Route, RouteTable
from mlxgw.dispatch.sticky import Sticky, session_of
from mlxgw.errors import BAD_OUTPUT, GatewayError, OverLimit, Unsupported, UpstreamError
from mlxgw.settings import LOCAL, Policy, Settings

log = logging.getLogger("mlxgw.dispatch")


CONTEXT_LENGTH = "context_length_exceeded"


# The upstream refused mlxgw's own credentials (or billing): the next backend may well answer.
BACKEND_AUTH_FAILURES = (401, 402, 403)


@dataclass
class AttemptRecord:
    backend: str
    model: str
    tries: int = 0
    error: str | None = None  # why it failed, or None for the one that served
    passthrough: bool = False  # it served, relaying the upstream's own bytes in the client's protocol
    sticky: bool = False  # it served, put first because its session had failed over to it (`sticky`)

    def as_json(self) -> dict:
        record = {"backend": self.backend, "model": self.model, "tries": self.tries, "error": self.error}
        marks = {name: True for name in ("passthrough", "sticky") if getattr(self, name)}
        return {**record, **marks}


@dataclass
class Opened:
    """An answer whose first meaningful item (or, unstreamed, whose whole body) has arrived."""

    backend: str
    model: str
    head: list[Item]
    tail: AsyncIterator[Item]
    on_close: Callable[[], None] | None = None  # once, when the answer is over

    async def aclose(self) -> None:
        try:
            await self.tail.aclose()
        finally:
            done, self.on_close = self.on_close, None
            if done is not None:
                done()


T = TypeVar("T")


# One try of one attempt: (backend, breaker, policy, model, deadline) → its result.
OneTry = Callable[..., Awaitable[T]]


class Dispatcher:
    def __init__(
        self,
        registry: Registry,
        routes: Callable[[], RouteTable],
        settings: Callable[[], Settings],
    ) -> None:
        self.registry = registry
        self.routes = routes
        self.settings = settings
        self.breakers = Breakers()
        self.sticky = Sticky()
        self.balancer = Balancer(lambda attempt: self.breaker(attempt.backend, attempt.model).available())

    def route(self, model: str) -> Route:
        table = self.routes()
        route = table.resolve(model)
        if route is None:
            known, patterns = table.listed(), table.patterns()
            hints = [f"available: {', '.join(known)}"] if known else []
            hints += [f"mapped patterns: {', '.join(patterns)}"] if patterns else []
            hint = "; " + "; ".join(hints or ["no models are mapped yet (see `mlxgw map add`)"])
            raise GatewayError("not_found", f"model {model!r} is not mapped{hint}", param="model", code="model_not_found")
        return route

    def breaker(self, backend: str, model: str) -> Breaker:
        policy = self.settings().policy_for(backend)
        key = f"{LOCAL}:{model}" if backend == LOCAL else backend
        return self.breakers.get(key, policy.breaker_failures, policy.breaker_cooldown_s)

    async def open(
        self, request: ChatRequest, trace: list[AttemptRecord], *, over_budget: OverLimit | None = None,
        client: str | None = None,
    ) -> Opened:
        """Walk the chain until an attempt starts answering. `trace` receives one record per attempt.
        `over_budget`: the client key is over a budget, so only local models may answer. `client`:
        the client key's name, under which the request's session sticks to a fallback (`sticky`)."""
        configured = route = self.balancer.order(self.route(request.model))
        session = stuck = None
        if over_budget is not None:
            route = within_budget(route, over_budget, trace)
        elif route.mapping.sticky_s > 0 and (session := session_of(request, client)) is not None:
            route, stuck = self._stuck(route, session)
        request.output_ceiling = route.mapping.max_output_tokens
        checks = BAD_OUTPUT in route.mapping.fallback_on and OutputCheck.needed(request)

        async def one_try(backend, breaker: Breaker, policy: Policy, model: str, deadline: float) -> Opened:
            check = OutputCheck(request) if checks and backend.kind == LOCAL else None
            return await self._try(backend, breaker, policy, request, model, deadline, check)

        opened = await self._walk(route, trace, one_try)
        trace[-1].passthrough = any(isinstance(item, RawFrame) for item in opened.head)
        if session is not None:
            self._remember(configured, session, trace[-1], stuck)
        return opened

    def _stuck(self, route: Route, session: str) -> tuple[Route, Attempt | None]:
        """The route with the fallback this session failed over to first, while it sticks and its
        breaker lets requests through; else the route as configured."""
        attempt = self.sticky.get(route.mapping.pattern, session)
        if attempt is None or attempt not in route.chain[route.equivalent:]:
            return route, None
        if not self.breaker(attempt.backend, attempt.model).available():
            return route, None
        return replace(route, chain=(attempt, *(a for a in route.chain if a != attempt))), attempt

    def _remember(self, route: Route, session: str, served: AttemptRecord, stuck: Attempt | None) -> None:
        """A fallback that answered holds the session for sticky_s from its failover (its sticky
        turns do not extend that); the chain's first choice answering it lets it go."""
        answered = Attempt(served.backend, served.model)
        pattern = route.mapping.pattern
        if answered == stuck:
            served.sticky = True
        elif answered in route.chain[: route.equivalent]:
            self.sticky.forget(pattern, session)
        else:
            self.sticky.stick(pattern, session, answered, route.mapping.sticky_s)

    async def count_tokens(self, request: ChatRequest, trace: list[AttemptRecord]) -> int:
        """The request's input tokens, counted by the first attempt of its chain that can, under the
        rules `open` follows (breakers, failover, the same errors for the client) but with one try
        per attempt: a count is quicker asked of the next backend than waited for with backoff."""

        async def one_try(backend, breaker: Breaker, policy: Policy, model: str, deadline: float) -> int:
            permit = _permit(breaker, backend.name)
            try:
                count = await backend.count_tokens(request, model)
            except UpstreamError as exc:
                (breaker.failed if exc.retryable else breaker.released)(permit)
                raise
            except BaseException:
                breaker.released(permit)
                raise
            breaker.succeeded(permit)
            return count

        return await self._walk(self.route(request.model), trace, one_try, max_tries=1)

    async def _walk(
        self, route: Route, trace: list[AttemptRecord], one_try: OneTry[T], *, max_tries: int | None = None
    ) -> T:
        """Try the route's attempts in order until one succeeds, within the request deadline; each
        up to `max_tries` times (default: its backend's policy)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings().server.request_deadline_s
        last: UpstreamError | None = None
        unsupported: Unsupported | None = None
        try:
            async with asyncio.timeout_at(deadline):
                for attempt in route.chain:
                    record = AttemptRecord(attempt.backend, attempt.model)
                    trace.append(record)
                    try:
                        return await self._attempt(record, deadline, one_try, max_tries)
                    except Unsupported as exc:
                        record.error = "unsupported"
                        unsupported = unsupported or exc
                        log.info("%s:%s cannot take this request (%s); moving on", attempt.backend, attempt.model, exc.message)
                    except UpstreamError as exc:
                        record.error = exc.code or exc.kind
                        last = exc
                        moves_on = (
                            exc.retryable
                            or exc.status in BACKEND_AUTH_FAILURES
                            or _backend_failed(exc)
                            or (exc.code == CONTEXT_LENGTH and "context_length" in route.mapping.fallback_on)
                            or (exc.code == BAD_OUTPUT and BAD_OUTPUT in route.mapping.fallback_on)
                        )
                        if not moves_on:
                            raise _client_facing(exc) from None
                        log.info("%s:%s failed (%s); moving on", attempt.backend, attempt.model, exc.message)
        except TimeoutError:
            if trace and trace[-1].error is None:
                trace[-1].error = "deadline"
            raise UpstreamError(
                "timeout", f"no backend answered within the request deadline ({self.settings().server.request_deadline_s:g} s)"
            ) from None
        if last is None:  # no backend of the chain can do what the request asks
            assert unsupported is not None
            raise unsupported
        if len(trace) == 1:
            raise _client_facing(last)
        tried = ", ".join(f"{a.backend}:{a.model} ({a.error})" for a in trace)
        raise UpstreamError("bad_gateway", f"every backend failed: {tried}; last error: {last.message}", backend=last.backend)

    async def _attempt(self, record: AttemptRecord, deadline: float, one_try: OneTry[T], max_tries: int | None) -> T:
        backend = self.registry.get(record.backend)
        if backend is None:
            raise UpstreamError("unavailable", f"backend {record.backend} is not configured", backend=record.backend, retryable=True)
        policy = self.settings().policy_for(record.backend)
        breaker = self.breaker(record.backend, record.model)

        async def counted_try() -> T:
            record.tries += 1
            return await one_try(backend, breaker, policy, record.model, deadline)

        retry_limits.set((max_tries or policy.max_tries, deadline))
        return await with_retries(counted_try)

    async def _try(
        self, backend, breaker: Breaker, policy: Policy, request: ChatRequest, model: str, deadline: float,
        check: OutputCheck | None,
    ) -> Opened:
        """One try, counted among the backend's outstanding requests until its answer is closed."""
        self.balancer.started(backend.name)
        try:
            opened = await self._try_once(backend, breaker, policy, request, model, deadline, check)
        except BaseException:
            self.balancer.finished(backend.name)
            raise
        opened.on_close = lambda: self.balancer.finished(backend.name)
        return opened

    async def _try_once(
        self, backend, breaker: Breaker, policy: Policy, request: ChatRequest, model: str, deadline: float,
        check: OutputCheck | None,
    ) -> Opened:
        """`check`: the answer is held back until it is checked (a local one, under bad_output)."""
        permit = _permit(breaker, backend.name)
        answer = in_client_names(
            paced(backend.stream(request, model), backend.name, policy, deadline, whole=not request.stream), request
        )
        if backend.kind == LOCAL:
            answer = as_written(answer) if check is None else held(answer, check, backend.name)
        head: list[Item] = []
        try:
            async for item in answer:
                head.append(item)
                if request.stream and is_meaningful(item):
                    break
        except UpstreamError as exc:
            await answer.aclose()
            (breaker.failed if exc.retryable else breaker.released)(permit)
            raise
        except BaseException:
            await answer.aclose()
            breaker.released(permit)
            raise
        breaker.succeeded(permit)
        tail = watched(answer, breaker) if request.stream else nothing(answer)
        return Opened(backend.name, model, head, tail)


# ---- budget exhausted → local ----------------------------------------------------------------


def within_budget(route: Route, over_budget: OverLimit, trace: list[AttemptRecord]) -> Route:
    """The chain a client key over its budget may take: its local attempts as they are, each paid
    one replaced by the mapping's `over_budget` local model (or dropped, without one), each such
    skip recorded in `trace` as error "over_budget". Refused with `over_budget` when none is left."""
    target = route.mapping.over_budget
    chain: list[Attempt] = []
    for attempt in route.chain:
        if attempt.backend != LOCAL:
            trace.append(AttemptRecord(attempt.backend, attempt.model, error="over_budget"))
            if target is None:
                continue
            attempt = Attempt(LOCAL, target.model)
        if attempt not in chain:
            chain.append(attempt)
    if not chain:
        raise over_budget
    return Route(route.mapping, tuple(chain))


def _backend_failed(exc: UpstreamError) -> bool:
    """The backend failed or is overloaded, not the request, even where it says not to retry it:
    another mlxgw that retried and failed over already answers `x-should-retry: false`, and the
    next backend may still answer."""
    return exc.status >= 500 or exc.status in (408, 429)


def _permit(breaker: Breaker, name: str) -> Permit:
    permit = breaker.allow()
    if permit is None:
        raise UpstreamError(
            "unavailable", f"backend {name} is failing; its circuit is open", backend=name, retryable=True, code="circuit_open"
        )
    return permit


def _client_facing(exc: UpstreamError) -> GatewayError:
    """A request-caused upstream error, as the client should see it.

    An upstream's 401/403 is the gateway's configuration problem, not the client's credentials;
    an upstream's 500 is a bad gateway from where the client stands, not the gateway failing.
    """
    if exc.status == 500:
        return UpstreamError("bad_gateway", f"backend {exc.backend} failed: {exc.message}", backend=exc.backend)
    if exc.status in (401, 403):
        return UpstreamError(
            "bad_gateway",
            f"backend {exc.backend} rejected mlxgw's credentials (HTTP {exc.status}: {exc.message}); "
            f"check `mlxgw creds set {exc.backend}`",
            backend=exc.backend,
        )
    return exc
