"""Samplers for the batch: one per setting, shared by the sequences that use it."""

from __future__ import annotations

import functools

from mlx_lm.sample_utils import make_sampler

from mlxgw.worker.frames import Job


def sampler_for(job: Job, defaults: dict[str, float]):
    """The request's sampler, the model's generation_config defaults filling what it left unset."""
    return _sampler(
        job.temperature if job.temperature is not None else defaults["temperature"],
        job.top_p if job.top_p is not None else defaults.get("top_p", 0.0),
        job.min_p if job.min_p is not None else defaults.get("min_p", 0.0),
        job.top_k if job.top_k is not None else int(defaults.get("top_k", 0)),
    )


@functools.lru_cache(maxsize=64)
def _sampler(temperature: float, top_p: float, min_p: float, top_k: int):
    """One sampler per setting: sequences that share a sampler object are sampled in one call."""
    return make_sampler(temperature, top_p=top_p, min_p=min_p, top_k=top_k)
