"""Reading the mappings back from the store, as the daemon and `map` commands see them."""

from __future__ import annotations

import json

from mlxgw.settings import BALANCES, MappingSettings, Target
from mlxgw.store.tables import Mapping


def load_mappings() -> list[MappingSettings]:
    return [
        MappingSettings(
            pattern=row.pattern,
            backend=row.backend,
            model=row.model,
            fallbacks=tuple(Target.parse(t) for t in json.loads(row.fallbacks)),
            priority=row.priority,
            enabled=row.enabled,
            fallback_on=tuple(json.loads(row.fallback_on)),
            max_output_tokens=row.max_output_tokens,
            over_budget=Target.parse(row.over_budget) if row.over_budget else None,
            backends=tuple(json.loads(row.backends)),
            balance=row.balance or BALANCES[0],
            sticky_s=MappingSettings.sticky_s if row.sticky_s is None else row.sticky_s,
        )
        for row in Mapping.select().order_by(Mapping.position)
    ]
