"""What the observability tests share: scraping /metrics into {(name, labels): value}."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

MSG = [{"role": "user", "content": "hi"}]


async def scrape(url: str, headers: dict | None = None) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, keyed by its name and labels."""
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics", headers=headers or {}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """One sample's value; 0 when it is absent (a counter never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of `name` over every sample whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def moved(before: dict, after: dict) -> dict:
    """The samples whose value changed, with the change (counters and histogram counts/sums)."""
    return {key: after[key] - before.get(key, 0.0) for key in after if after[key] != before.get(key, 0.0)}
