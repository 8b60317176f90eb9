"""A thinking budget for models that think inside `<think>…</think>` (or their own markers): once a
sequence has thought for its budget of tokens, the end marker is forced, so the answer goes on
within the request's max_tokens instead of thinking to the end of it.

A logits processor of one sequence: the batch calls it once per decoding step with the sequence's
tokens so far, the last one being the token fed in this step (the prompt's last token at the first
step, then each token generated), and uses the logits it returns.
"""

from __future__ import annotations

import mlx.core as mx

from mlxgw.worker.frames import Job


def thinking_budget(job: Job, tokenizer, *, thinking: bool) -> ThinkingBudget | None:
    """The processor for `job`, or None where there is no budget or the model has no thinking
    markers. `thinking`: whether the prompt leaves a thought open (the template opened `<think>`)."""
    if job.thinking_budget is None or not tokenizer.has_thinking:
        return None
    return ThinkingBudget(tokenizer.think_start_tokens, tokenizer.think_end_tokens, job.thinking_budget, thinking=thinking)


class ThinkingBudget:
    def __init__(self, start: tuple[int, ...], end: tuple[int, ...], budget: int, *, thinking: bool) -> None:
        self._start, self._end = tuple(start), tuple(end)
        self._budget = budget
        self._thinking = thinking
        self._spent = 0  # tokens generated inside the open thought
        self._forced = 0  # how many of the end marker's tokens have been forced
        self._recent: list[int] = []  # the last generated tokens, enough to match either marker
        self._started = False

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        if self._started:
            self._see(tokens[-1].item())
        self._started = True
        if not self._thinking or self._spent < self._budget:
            return logits
        allowed = mx.arange(logits.shape[-1]) == self._end[self._forced]
        return mx.where(allowed, mx.zeros_like(logits), mx.full(logits.shape, -mx.inf, dtype=logits.dtype))

    def _see(self, token: int) -> None:
        self._recent = [*self._recent, token][-max(len(self._start), len(self._end)) :]
        if not self._thinking:
            if tuple(self._recent[-len(self._start) :]) == self._start:
                self._thinking, self._spent = True, 0
            return
        if self._spent >= self._budget:
            # The next of the marker's tokens came, or something else won (a sequence ended there):
            # the marker is forced again from its start.
            self._forced = self._forced + 1 if token == self._end[self._forced] else 0
        if tuple(self._recent[-len(self._end) :]) == self._end:
            self._thinking, self._forced = False, 0
        else:
            self._spent += 1
