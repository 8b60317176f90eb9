"""Which mapping answers a model name, and the ordered chain of attempts it yields."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from mlxgw import paths
from mlxgw.settings import LOCAL, MAX_CHAIN, WILDCARDS, MappingSettings, Target, is_pattern


@dataclass(frozen=True)
class Attempt:
    backend: str
    model: str


@dataclass(frozen=True)
class Route:
    mapping: MappingSettings
    chain: tuple[Attempt, ...]
    # The chain's first `equivalent` attempts are the mapping's spread: any of them may go first.
    equivalent: int = 1


def specificity(pattern: str) -> tuple[int, int]:
    """Exact names beat patterns; among patterns, more literal characters beat fewer."""
    literal = sum(1 for ch in pattern if ch not in WILDCARDS)
    return (0 if is_pattern(pattern) else 1, literal)


def ordered(mappings: tuple[MappingSettings, ...] | list[MappingSettings]) -> list[MappingSettings]:
    """Enabled mappings in match order: priority (high first), then specificity, then config order."""
    indexed = [(i, m) for i, m in enumerate(mappings) if m.enabled]
    indexed.sort(key=lambda im: (-im[1].priority, tuple(-x for x in specificity(im[1].pattern)), im[0]))
    return [m for _, m in indexed]


def resolve(model: str, mappings: tuple[MappingSettings, ...] | list[MappingSettings]) -> Route | None:
    return RouteTable(mappings).resolve(model)


class RouteTable:
    """The mappings sorted once into match order, for resolving many requests."""

    def __init__(self, mappings: tuple[MappingSettings, ...] | list[MappingSettings]) -> None:
        self.mappings = list(mappings)
        self.ordered = ordered(self.mappings)

    def resolve(self, model: str) -> Route | None:
        for mapping in self.ordered:
            if fnmatchcase(model, mapping.pattern):
                return Route(mapping, chain_for(model, mapping), len(mapping.spread))
        return None

    def listed(self) -> list[str]:
        """Model names a client can ask for by name: every enabled pattern without wildcards."""
        return [m.pattern for m in self.ordered if not is_pattern(m.pattern)]

    def patterns(self) -> list[str]:
        return [m.pattern for m in self.ordered if is_pattern(m.pattern)]

    @functools.cached_property
    def local_models(self) -> dict[str, str]:
        return local_models(self.mappings)


def chain_for(model: str, mapping: MappingSettings) -> tuple[Attempt, ...]:
    """The primary (each of the spread, in config order) then each fallback; a (backend, model)
    pair is never tried twice."""
    chain: list[Attempt] = []
    for target in (*(Target(name, mapping.model) for name in mapping.spread), *mapping.fallbacks):
        attempt = Attempt(target.backend, target.model or model)
        if attempt not in chain:
            chain.append(attempt)
    return tuple(chain[:MAX_CHAIN])


def local_models(mappings: tuple[MappingSettings, ...] | list[MappingSettings]) -> dict[str, str]:
    """Every local model a mapping names (name -> directory or repo id): the only ones that may load.

    A local target's model is its own name; a local mapping without a model serves its exact pattern.
    """
    names: dict[str, str] = {}
    for m in mappings:
        targets = [Target(name, m.model or (None if is_pattern(m.pattern) else m.pattern)) for name in m.spread]
        targets += [*m.fallbacks, *([m.over_budget] if m.over_budget else [])]
        for t in targets:
            if t.backend == LOCAL and t.model:
                names[t.model] = local_path(t.model)
    return names


def local_path(model: str) -> str:
    """Where a local model name points: a folder under <home>/models by that name, else the name
    itself (a directory, or a Hugging Face repo id)."""
    if not model.startswith(("/", "~", ".")):
        candidate = paths.models_dir() / model
        if candidate.is_dir():
            return str(candidate)
    return str(Path(model).expanduser()) if model.startswith("~") else model
