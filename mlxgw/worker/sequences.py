"""What the engine tracks in a model's batch: a request's sequence, a finished turn being computed
ahead for the next one, and the batch's counters."""

from __future__ import annotations

from dataclasses import dataclass

from mlxgw.worker.frames import Job
from mlxgw.worker.pool import Slot
from mlxgw.worker.sequence_events import SequenceOutput
from mlxgw.worker.turns import AnswerRecord


@dataclass
class Sequence:
    job: Job
    slot: Slot
    uid: int
    output: SequenceOutput
    answer: AnswerRecord
    admitted: float  # perf_counter() when the engine took the request up
    generated: int = 0
    prefill_ms: float | None = None  # from then to the first generated token


@dataclass
class Ahead:
    """A finished turn's tokens as the next request will start with them, being computed in the
    batch (with one throw-away token generated, greedily: the batch always generates)."""

    tokens: list[int]
    messages: list[dict]  # the finished turn's prompt: the next turn's messages start with them

    def continued_by(self, job: Job) -> bool:
        return job.messages[: len(self.messages)] == self.messages


@dataclass
class BatchStats:
    requests: int = 0
    cancelled: int = 0
    steps: int = 0  # decode steps, each one token for every sequence in the batch
    generated_tokens: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    max_batch_size: int = 0  # the most sequences decoded together in one step
