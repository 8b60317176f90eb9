"""Reasoning effort across the APIs, in one table: each named level is a thinking budget in tokens.

    level     budget   read from                                      written as
    none      0        Chat Completions, Responses                     budget 0
    minimal   1024     Chat Completions, Responses                     budget 1 to 1023
    low       1024     all three (Anthropic `output_config.effort`)    budget 1024 to 4095
    medium    4096     all three                                       budget 4096 to 16383
    high      16384    all three; Anthropic's `adaptive` default       budget 16384 to 32767
    xhigh     32768    Chat Completions, Responses                     budget 32768 and more
    max       32768    Anthropic

Reading: Chat Completions `reasoning_effort` and Responses `reasoning.effort` give their level's
budget; Anthropic `thinking: {"type": "enabled", "budget_tokens": N}` gives N, and `{"type":
"adaptive"}` the budget of `output_config.effort` (high when absent, the API's default; a level
newer than this table gets high's too). Writing: an Anthropic upstream takes the budget as
`budget_tokens` (1024 at least); OpenAI's take the level whose budget range holds it, so every level
but minimal (which shares low's budget) comes back as itself; the local worker takes the budget as
the most tokens a `<think>` model may think. "none" is a budget of 0: no thinking config for
Anthropic, `none` for OpenAI's APIs, and a local `<think>` model's thought closed at once.

Anthropic's `adaptive` lets the model decide whether to think, so it is no demand for reasoning:
a Chat Completions upstream, where models that do not reason refuse `reasoning_effort`, gets none
for it (Claude Code sends `adaptive` on every request, whatever model it is mapped to).
"""

from __future__ import annotations

from mlxgw.canonical import ChatRequest

BUDGETS: dict[str, int] = {
    "none": 0,
    "minimal": 1024,
    "low": 1024,
    "medium": 4096,
    "high": 16384,
    "xhigh": 32768,
    "max": 32768,
}
OPENAI_LEVELS = ("none", "minimal", "low", "medium", "high", "xhigh")
ANTHROPIC_LEVELS = ("low", "medium", "high", "max")
ANTHROPIC_DEFAULT = "high"
# A budget written as an OpenAI level: the first whose bound the budget is under.
_OPENAI_STEPS = ((1, "none"), (1024, "minimal"), (4096, "low"), (16384, "medium"), (32768, "high"))
_OPENAI_TOP = "xhigh"


def budget_for(level: str | None) -> int | None:
    return BUDGETS.get(level) if level else None


def anthropic_budget(level: str | None) -> int:
    """The budget of an `adaptive` request's `output_config.effort`."""
    budget = BUDGETS.get(level or ANTHROPIC_DEFAULT)
    return BUDGETS[ANTHROPIC_DEFAULT] if budget is None else budget


def openai_level(budget: int) -> str:
    return next((level for bound, level in _OPENAI_STEPS if budget < bound), _OPENAI_TOP)


def demands_reasoning(req: ChatRequest) -> bool:
    """A budget the client asked for outright, rather than Anthropic's `adaptive` permission."""
    if req.thinking_budget is None:
        return False
    thinking = (req.raw or {}).get("thinking") if req.protocol == "anthropic" else None
    return not (isinstance(thinking, dict) and thinking.get("type") == "adaptive")
