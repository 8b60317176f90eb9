"""Circuit breakers: stop sending requests to a backend that keeps failing, then probe it with one.

All state changes happen synchronously on the event loop (no await between a check and its
update), so concurrent requests can never let two half-open probes through.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half_open"]

WINDOW = 20  # outcomes remembered for the failure-rate rule
MIN_SAMPLES = 10  # the rate rule needs at least this many
FAILURE_RATE = 0.5


@dataclass
class Permit:
    """Leave to try a backend once. `probe` marks the single half-open trial."""

    probe: bool = False


class Breaker:
    def __init__(self, failures: int = 5, cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.state: State = "closed"
        self.consecutive = 0
        self.opened_at = 0.0
        self.outcomes: deque[bool] = deque(maxlen=WINDOW)
        self._probing = False

    def allow(self) -> Permit | None:
        """A permit to try now, or None: skip this backend."""
        if self.state == "closed":
            return Permit()
        if self.state == "open":
            if self.clock() - self.opened_at < self.cooldown_s:
                return None
            self.state = "half_open"
        if self._probing:
            return None
        self._probing = True
        return Permit(probe=True)

    def available(self) -> bool:
        """Whether `allow` would give a permit now, without taking one (or starting a half-open trial)."""
        if self.state == "open" and self.clock() - self.opened_at < self.cooldown_s:
            return False
        return self.state == "closed" or not self._probing

    def succeeded(self, permit: Permit) -> None:
        self.outcomes.append(True)
        self.consecutive = 0
        if permit.probe:
            self._probing = False
            self.state = "closed"
            self.outcomes.clear()

    def failed(self, permit: Permit) -> None:
        self.outcomes.append(False)
        self.consecutive += 1
        if permit.probe:
            self._probing = False
            self._open()
        elif self.state == "closed" and (self.consecutive >= self.failures or self._rate_exceeded()):
            self._open()

    def released(self, permit: Permit) -> None:
        """The try ended with no verdict on the backend (the client's fault, or it went away)."""
        if permit.probe:
            self._probing = False

    def _rate_exceeded(self) -> bool:
        n = len(self.outcomes)
        return n >= MIN_SAMPLES and self.outcomes.count(False) / n >= FAILURE_RATE

    def _open(self) -> None:
        self.state = "open"
        self.opened_at = self.clock()  # a re-open starts a fresh cooldown

    def snapshot(self) -> dict:
        info: dict = {"state": self.state, "consecutive_failures": self.consecutive}
        if self.state == "open":
            info["retry_in_s"] = round(max(0.0, self.cooldown_s - (self.clock() - self.opened_at)), 3)
        return info


class Breakers:
    """One breaker per backend (and per local model), created on first use."""

    def __init__(self) -> None:
        self._all: dict[str, Breaker] = {}

    def get(self, key: str, failures: int, cooldown_s: float) -> Breaker:
        breaker = self._all.get(key)
        if breaker is None:
            breaker = self._all[key] = Breaker(failures, cooldown_s)
        else:
            breaker.failures, breaker.cooldown_s = failures, cooldown_s
        return breaker

    def snapshot(self) -> dict[str, dict]:
        return {key: b.snapshot() for key, b in sorted(self._all.items())}
