"""Spreading one mapping over equivalent backends: which of them a request starts at.

A mapping with `backends = [...]` has a chain whose first attempts are interchangeable. Each
request reorders them: the pick goes first, the other equivalents follow as failover (healthy ones
first), then the mapping's own fallbacks. `least_outstanding` picks the backend with the fewest
requests in flight on this gateway, ties going round the list; `round_robin` goes round the list.
A backend whose breaker refuses it is never the pick; once its cooldown is over it is a candidate
again, and the request that picks it is the half-open probe.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from mlxgw.dispatch.route_table import Attempt, Route


class Balancer:
    def __init__(self, available: Callable[[Attempt], bool]) -> None:
        self.available = available  # whether an attempt's breaker would let a request through now
        self.outstanding: Counter[str] = Counter()  # requests in flight, by backend name
        self._turns: Counter[str] = Counter()  # requests spread so far, by mapping pattern

    def order(self, route: Route) -> Route:
        """`route` with its equivalent attempts in the order this request tries them."""
        n = route.equivalent
        if n < 2:
            return route
        pattern = route.mapping.pattern
        turn = self._turns[pattern] % n
        self._turns[pattern] += 1
        rotated = [*route.chain[turn:n], *route.chain[:turn]]
        healthy = [a for a in rotated if self.available(a)]
        sick = [a for a in rotated if a not in healthy]
        if healthy and route.mapping.balance == "least_outstanding":
            # min keeps the first of equals: ties go to the next in this request's rotation.
            first = min(healthy, key=lambda a: self.outstanding[a.backend])
            healthy.remove(first)
            healthy.insert(0, first)
        return Route(route.mapping, (*healthy, *sick, *route.chain[n:]), n)

    def started(self, backend: str) -> None:
        self.outstanding[backend] += 1

    def finished(self, backend: str) -> None:
        self.outstanding[backend] -= 1
        if self.outstanding[backend] <= 0:
            del self.outstanding[backend]
