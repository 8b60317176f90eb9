"""What a request cost: the price of the model that answered ([pricing] first, then the defaults
shipped here) applied to the usage its backend reported. Local requests cost nothing."""

from __future__ import annotations

from fnmatch import fnmatchcase

from mlxgw.canonical import Usage
from mlxgw.settings import LOCAL, WILDCARDS, Price, PriceRule, is_pattern

# The shipped prices are ESTIMATES, copied from OpenAI's and Anthropic's public price lists as they
# stood in PRICES_AS_OF (standard tier, short context, no batch discount). Providers change them:
# an entry in [pricing] for the same model replaces its default.
PRICES_AS_OF = "2025-11"

_MILLION = 1_000_000


def _openai(input: float, output: float, cached: float | None = None) -> Price:
    """OpenAI discounts cached prompt tokens and charges nothing extra for caching."""
    return Price(input, output, cached=cached)


def _anthropic(input: float, output: float) -> Price:
    """Anthropic reads its cache at a tenth of the input price and writes it (5-minute TTL) at 1.25 times."""
    return Price(input, output, cached=round(input * 0.1, 6), cache_write=round(input * 1.25, 6))


DEFAULT_PRICES: tuple[PriceRule, ...] = tuple(
    PriceRule(model, price)
    for model, price in {
        "gpt-5*": _openai(1.25, 10, 0.125),
        "gpt-5-mini*": _openai(0.25, 2, 0.025),
        "gpt-5-nano*": _openai(0.05, 0.40, 0.005),
        "gpt-5-pro*": _openai(15, 120),
        "gpt-4.1*": _openai(2, 8, 0.50),
        "gpt-4.1-mini*": _openai(0.40, 1.60, 0.10),
        "gpt-4.1-nano*": _openai(0.10, 0.40, 0.025),
        "gpt-4o*": _openai(2.50, 10, 1.25),
        "gpt-4o-mini*": _openai(0.15, 0.60, 0.075),
        "gpt-4-turbo*": _openai(10, 30),
        "gpt-3.5-turbo*": _openai(0.50, 1.50),
        "o1*": _openai(15, 60, 7.50),
        "o1-mini*": _openai(1.10, 4.40, 0.55),
        "o3*": _openai(2, 8, 0.50),
        "o3-mini*": _openai(1.10, 4.40, 0.55),
        "o3-pro*": _openai(20, 80),
        "o4-mini*": _openai(1.10, 4.40, 0.275),
        "codex-mini*": _openai(1.50, 6, 0.375),
        "claude-opus-4-*": _anthropic(5, 25),  # Opus 4.5 and later
        "claude-opus-4-0*": _anthropic(15, 75),
        "claude-opus-4-1*": _anthropic(15, 75),
        "claude-opus-4-2025*": _anthropic(15, 75),  # claude-opus-4-20250514
        "claude-3-opus*": _anthropic(15, 75),
        "claude-sonnet-4*": _anthropic(3, 15),
        "claude-3-7-sonnet*": _anthropic(3, 15),
        "claude-3-5-sonnet*": _anthropic(3, 15),
        "claude-haiku-4*": _anthropic(1, 5),
        "claude-3-5-haiku*": _anthropic(0.80, 4),
        "claude-3-haiku*": _anthropic(0.25, 1.25),
    }.items()
)


def _specificity(rule: PriceRule) -> tuple[bool, bool, int]:
    """A rule for one backend beats one for any; an exact name beats a pattern; then the longer literal."""
    return (rule.backend is not None, not is_pattern(rule.model), sum(ch not in WILDCARDS for ch in rule.model))


def price_for(backend: str, model: str, rules: tuple[PriceRule, ...]) -> Price | None:
    """The price of `model` on `backend`: the most specific matching [pricing] rule, else the most
    specific shipped default; None when neither knows the model."""
    for ruleset in (rules, DEFAULT_PRICES):
        matching = [r for r in ruleset if r.backend in (None, backend) and fnmatchcase(model, r.model)]
        if matching:
            return max(matching, key=_specificity).price
    return None


def cost_usd(backend: str | None, model: str | None, usage: Usage, rules: tuple[PriceRule, ...]) -> float | None:
    """What the answer of `model` on `backend` cost, in USD: 0 for a local model, None when no price
    is known, nothing answered or the backend reported no usage. Usage counts as Anthropic's does:
    input excludes the cache's reads and writes, each priced on its own."""
    if backend is None or model is None:
        return None
    if backend == LOCAL:
        return 0.0
    price = price_for(backend, model, rules)
    if price is None or (usage.input_tokens is None and usage.output_tokens is None):
        return None
    cached = price.input if price.cached is None else price.cached
    cache_write = price.input if price.cache_write is None else price.cache_write
    total = (
        (usage.input_tokens or 0) * price.input
        + (usage.output_tokens or 0) * price.output
        + (usage.cache_read_tokens or 0) * cached
        + (usage.cache_write_tokens or 0) * cache_write
    )
    return total / _MILLION
