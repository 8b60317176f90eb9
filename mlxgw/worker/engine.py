"""The engine: the one thread of the worker that touches MLX.

MLX streams belong to the thread that made them, so loading, prefill and decoding all happen
here. Requests wait in a queue; each is admitted into its model's `BatchGenerator`, where it joins
the sequences already decoding (continuous batching). Each step decodes one token for every
sequence of every busy model and sends what became text.

Each prompt starts from the longest prefix the model's prompt cache holds (see `prefix_cache`),
and every sequence leaves its cache there when it ends. A finished answer's cache is also carried
on to the tokens the next turn will start with (the chat template's rendering of the answer, which
often differs from the tokens generated), computed ahead, before the next request is admitted. A
model whose cache cannot be trimmed is served by exact prefixes only: its cache is also kept at the
end of the prompt's system turn and before its last token, as the prompt fills.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache

from mlxgw.canonical import Event, Finish, Start, Usage
from mlxgw.worker import tokens as tk
from mlxgw.worker.constraints import ConstraintError, Grammars
from mlxgw.worker.frames import Job
from mlxgw.worker.outbox import Outbox
from mlxgw.worker.pool import ModelPool, ModelUnavailable, Slot
from mlxgw.worker.prefix_cache import view
from mlxgw.worker.sampling import sampler_for
from mlxgw.worker.sequence_events import SequenceOutput, initial_state
from mlxgw.worker.sequences import Ahead, BatchStats, Sequence
from mlxgw.worker.system_turns import fit
from mlxgw.worker.thinking_budget import thinking_budget
from mlxgw.worker.turns import AnswerRecord, head_length, next_turn_tokens

log = logging.getLogger("mlxgw.worker")

# max_tokens when the request gives none (the daemon sends [local] default_max_tokens).
FALLBACK_MAX_TOKENS = 4096
# The most tokens of a finished turn computed ahead for the next one. A prompt's prefill costs a
# fraction of what generating as many tokens did, so a long answer is worth it too (an agent's
# file written through a tool call comes back re-serialised).
AHEAD_MAX_TOKENS = 16384
IDLE_POLL_S = 1.0


class Engine:
    def __init__(self, pool: ModelPool, send: Callable[[list[dict[str, Any]]], None]) -> None:
        self.pool = pool
        self.out = Outbox(send)
        self._inbox: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._pending: deque[Job] = deque()
        self._running: dict[int, Sequence] = {}  # request id -> sequence
        self._alone: Sequence | None = None  # a seeded sequence, which runs by itself
        self.stats = BatchStats()
        self.grammars = Grammars()

    # ---- called from other threads ------------------------------------------------------

    def submit(self, frame: dict[str, Any]) -> None:
        self._inbox.put(frame)

    def stop(self) -> None:
        self._inbox.put(None)

    # ---- the engine thread --------------------------------------------------------------

    def run(self) -> None:
        try:
            self._loop()
        except BaseException:
            # A broken engine must not leave a live process that answers nothing: exit, and the
            # daemon fails the requests in flight and starts a new worker.
            log.exception("the engine failed")
            os._exit(70)

    def _loop(self) -> None:
        while True:
            idle = not (self._running or self._pending or self._computing_ahead())
            for frame in self._receive(block=idle):
                if frame is None:
                    self._finish_ahead()
                    return
                self._handle(frame)
            self._admit()
            self._step()
            self.out.flush(busy=bool(self._running))
            self.pool.evict_idle(time.time())

    def _receive(self, *, block: bool) -> list[dict[str, Any] | None]:
        frames = []
        try:
            if block:
                frames.append(self._inbox.get(timeout=IDLE_POLL_S))
            while True:
                frames.append(self._inbox.get_nowait())
        except queue.Empty:
            return frames

    def _handle(self, frame: dict[str, Any]) -> None:
        op, rid = frame.get("op"), frame.get("id")
        try:
            if op == "generate":
                self._pending.append(Job.from_frame(frame))
            elif op == "cancel":
                self._cancel(rid)
            elif op == "count":
                self._count(frame)
            elif op == "load":
                slot = self.pool.load(frame["name"], frame["path"])
                self.out.reply({"id": rid, "result": slot.status()})
            elif op == "unload":
                self.out.reply({"id": rid, "result": {"state": self.pool.unload(frame["path"])}})
            elif op == "status":
                self.out.reply({"id": rid, "result": self._status()})
            elif op == "configure":
                limit_gb = frame["memory_limit_gb"]
                self.pool.configure(
                    max_loaded=frame["max_loaded_models"],
                    idle_unload_s=frame["idle_unload_s"] or None,
                    memory_limit_bytes=int(limit_gb * 1024**3) if limit_gb else None,
                    prompt_cache_bytes=int(frame["prompt_cache_gb"] * 1024**3),
                    disk_cache_bytes=int(frame["disk_cache_gb"] * 1024**3),
                )
                self.out.reply({"id": rid, "result": self.pool.limits()})
            else:
                self.out.error(rid, "invalid_request", f"unknown op {op!r}")
        except ModelUnavailable as e:
            self.out.unavailable(rid, e)
        except (KeyError, TypeError) as e:  # a malformed frame fails alone
            self.out.error(rid, "invalid_request", f"malformed {op!r} frame: {e!r}")

    def _count(self, frame: dict[str, Any]) -> None:
        tokenizer = self.pool.tokenizer(frame["path"])
        try:
            prompt = tokenizer.apply_chat_template(
                fit(tokenizer, frame["messages"]), tools=frame.get("tools") or None, add_generation_prompt=True
            )
        except Exception as e:  # the template's own error, e.g. a role it does not know
            self.out.error(frame["id"], "invalid_request", f"the chat template failed: {e}")
            return
        self.out.reply({"id": frame["id"], "result": {"tokens": len(prompt)}})

    # ---- admission ----------------------------------------------------------------------

    def _admit(self) -> None:
        for job in list(self._pending):
            if self._alone is not None:
                break
            if job.seed is not None and (self._running or self._computing_ahead()):
                break  # drain the batch: a seeded request runs alone to be reproducible
            if job not in self._pending:
                continue  # failed along with an earlier request for its model
            slot = self.pool.get(job.path)
            if slot is not None and self._computing_ahead(slot, job):
                continue  # a moment: it is computing this conversation's start
            if slot is None:
                if not self.pool.has_room():
                    continue  # every loaded model is busy; requests for them may go ahead
                try:
                    slot = self.pool.load(job.name, job.path)
                except ModelUnavailable as e:
                    # Everyone waiting for this model shares the failed load.
                    for waiting in [j for j in self._pending if j.path == job.path]:
                        self._pending.remove(waiting)
                        self.out.unavailable(waiting.id, e)
                    continue
            if not self.grammars.ready(job, slot, wait=not self._running):
                continue  # its grammar is being built on another thread; the batch decodes meanwhile
            self._pending.remove(job)
            try:
                self._start(job, slot)
            except Exception as e:  # a bug or a model quirk: this request fails, the rest go on
                log.exception("starting request %s failed", job.id)
                self.out.error(job.id, "api_error", f"generation did not start: {e}", retryable=True)

    def _start(self, job: Job, slot: Slot) -> None:
        admitted = time.perf_counter()  # its prefill counts from here: the template, the cache's read, the batch
        tokenizer = slot.tokenizer
        try:
            prompt = tokenizer.apply_chat_template(
                fit(tokenizer, job.messages), tools=job.tools or None, add_generation_prompt=True
            )
        except Exception as e:  # the template's own error, e.g. roles out of order
            self.out.error(job.id, "invalid_request", f"the chat template failed: {e}")
            return
        limit = slot.context_length
        if limit is not None and len(prompt) >= limit:
            # Anthropic's wording, which Claude Code reads as "compact the conversation"; the code
            # is OpenAI's for the same. At least one token must fit after the prompt.
            self.out.error(
                job.id,
                "invalid_request",
                f"prompt is too long: {len(prompt)} tokens > {limit - 1} maximum",
                code="context_length_exceeded",
            )
            return
        processors = []  # this sequence's own logits processors, in the order they apply
        try:
            grammar = self.grammars.processor(job, slot, prompt)
        except ConstraintError as e:
            self.out.error(job.id, "invalid_request", str(e))
            return
        if grammar is not None:
            processors.append(grammar)
        if budget := thinking_budget(job, tokenizer, thinking=initial_state(tokenizer, prompt) == "reasoning"):
            processors.append(budget)  # last, so that the end of a thought it forces stands
        max_tokens = job.max_tokens or FALLBACK_MAX_TOKENS
        if limit is not None:
            # Clamped, not refused: clients ask for more than small models hold (Claude Code: 128000).
            max_tokens = min(max_tokens, limit - len(prompt))

        cache, cached = slot.fetch(prompt)
        rest = prompt[cached:]

        if job.seed is not None:
            mx.random.seed(job.seed % 2**64)
        segments = [rest]
        if not slot.trimmable:
            # Only exact prefixes serve such a model: the batch stops at the end of the head every
            # session shares (the system turn and tools) and before the prompt's last token (where
            # the next turn starts from), and the cache is kept there (see `_step`).
            head = head_length(slot.tokenizer, job, prompt)
            if cached < head < len(prompt) - 1:
                segments = [prompt[cached:head], prompt[head:]]
        (uid,) = slot.batch.insert_segments(
            [segments],
            max_tokens=[max_tokens],
            caches=[cache],
            all_tokens=[prompt[:cached]],
            samplers=[sampler_for(job, slot.sampling)],
            logits_processors=[processors],
        )
        output = SequenceOutput(
            slot.rules,
            tokenizer.detokenizer,
            stops=job.stop,
            tools=job.tools,
            parse_tools=bool(job.tools),
            state=initial_state(tokenizer, prompt),
        )
        seq = Sequence(job, slot, uid, output, AnswerRecord(), admitted)
        slot.active[uid] = seq
        self._running[job.id] = seq
        if job.seed is not None:
            self._alone = seq
        self.stats.requests += 1
        self.stats.prompt_tokens += len(prompt)
        self.stats.cached_prompt_tokens += cached
        # Anthropic semantics (see canonical.Usage): input_tokens is the part not read from the cache.
        self.out.events(job.id, [Start(input_tokens=len(prompt) - cached, cache_read_tokens=cached)], urgent=True)

    # ---- decoding -----------------------------------------------------------------------

    def _step(self) -> None:
        for slot in list(self.pool.slots.values()):
            if not slot.active:
                continue
            try:
                prefill, responses = slot.batch.next()
            except Exception as e:  # e.g. out of memory: this model's batch is lost
                log.exception("decoding %s failed", slot.name)
                self._fail_slot(slot, e)
                continue
            answers = sum(isinstance(slot.active.get(r.uid), Sequence) for r in responses)
            if answers:
                self.stats.steps += 1
                self.stats.generated_tokens += answers
                self.stats.max_batch_size = max(self.stats.max_batch_size, answers)
            for response in prefill:
                seq = slot.active.get(response.uid)
                if isinstance(seq, Sequence) and not response.end_of_prompt:
                    # A long prompt can take minutes: this tells the daemon the worker is alive.
                    self.out.progress(seq.job.id, list(response.progress))
                    if response.end_of_segment and not slot.trimmable:
                        cache, tokens = slot.batch.extract_cache([response.uid])[response.uid]
                        slot.remember(list(tokens), cache)
            for response in responses:
                self._token(slot, response)

    def _token(self, slot: Slot, r) -> None:
        seq = slot.active.get(r.uid)
        if isinstance(seq, Ahead):
            if r.finish_reason is not None:
                self._computed_ahead(slot, r.uid, seq, r.all_tokens, r.prompt_cache)
            return
        if seq is None:
            return
        seq.generated += 1
        if seq.generated == 1:
            seq.prefill_ms = round((time.perf_counter() - seq.admitted) * 1000, 2)
        output = seq.output
        if r.finish_reason == "stop":  # an end-of-turn token
            events = output.end()
            reason = (
                "stop_sequence" if output.stop_sequence else "tool_use" if output.tool_calls else "end_turn"
            )
            self._finish(seq, events, reason, r.all_tokens, r.prompt_cache)
            return
        events = output.add_token(r.token)
        if output.stop_sequence is not None:
            if r.finish_reason is None:
                (cache, tokens) = slot.batch.remove([r.uid], return_prompt_caches=True)[r.uid]
            else:
                cache, tokens = r.prompt_cache, r.all_tokens
            self._finish(seq, events, "stop_sequence", tokens, cache)
        elif r.finish_reason == "length":
            events += output.end()
            reason = "stop_sequence" if output.stop_sequence else "max_tokens"
            self._finish(seq, events, reason, r.all_tokens, r.prompt_cache)
        elif events:
            seq.answer.add(events)
            self.out.events(seq.job.id, events, urgent=seq.generated == 1)

    def _finish(self, seq: Sequence, events: list[Event], reason: str, tokens, cache) -> None:
        seq.answer.add(events)
        stop = seq.output.stop_sequence if reason == "stop_sequence" else None
        events += [Usage(output_tokens=seq.generated, prefill_ms=seq.prefill_ms), Finish(reason, stop)]  # type: ignore[arg-type]
        self.out.events(seq.job.id, events, urgent=True)
        self._leave(seq, tokens, cache, next_turn=next_turn_tokens(seq.slot.tokenizer, seq.job, seq.answer))

    def _cancel(self, rid: int) -> None:
        for job in self._pending:
            if job.id == rid:
                self._pending.remove(job)
                return
        seq = self._running.get(rid)
        if seq is None:
            return
        # Mid-prefill too: the batch hands back the cache of the prompt steps already computed, so
        # the client's retry of a cut-off long prompt resumes there instead of paying again.
        caches = seq.slot.batch.remove([seq.uid], return_prompt_caches=True)
        cache, tokens = caches.get(seq.uid, (None, None))
        self.stats.cancelled += 1
        self._leave(seq, tokens, cache)

    def _leave(self, seq: Sequence, tokens, cache, *, next_turn: list[int] | None = None) -> None:
        slot = seq.slot
        slot.active.pop(seq.uid, None)
        self._running.pop(seq.job.id, None)
        if self._alone is seq:
            self._alone = None
        if cache is not None and tokens:
            self._keep(seq, list(tokens), cache, next_turn)
        slot.last_used = time.time()
        self.pool.release(slot)

    def _keep(self, seq: Sequence, tokens: list[int], cache, next_turn: list[int] | None) -> None:
        """Leave a sequence's cache to later prompts; carried on to `next_turn` where the tokens
        generated are not what the next turn will hold (or lack its closing tokens). Only caches
        that can be trimmed are: computing ahead ends with a token to take back."""
        slot = seq.slot
        if next_turn and can_trim_prompt_cache(cache):
            shared = tk.common_prefix(tk.pack(next_turn), tk.pack(tokens))
            if shared and 0 < len(next_turn) - shared <= AHEAD_MAX_TOKENS:
                trim_prompt_cache(cache, len(tokens) - shared)
                kept = slot.remember(tokens[:shared], cache, persist=False)  # the longer one goes to disk
                (uid,) = slot.batch.insert(
                    [next_turn[shared:]], max_tokens=[1], caches=[view(kept, 0)], all_tokens=[next_turn[:shared]]
                )
                slot.active[uid] = Ahead(next_turn, seq.job.messages)
                self.pool.cache_stats.ahead_tokens += len(next_turn) - shared
                return
        slot.remember(tokens, cache)

    def _computed_ahead(self, slot: Slot, uid: int, ahead: Ahead, tokens, cache) -> None:
        slot.active.pop(uid, None)
        extra = len(tokens) - len(ahead.tokens)  # the throw-away token
        if cache is not None and extra >= 0:
            trim_prompt_cache(cache, extra)
            slot.remember(ahead.tokens, cache)
        self.pool.release(slot)

    def _finish_ahead(self) -> None:
        """At shutdown: the turns being computed ahead are what the next start wants from disk."""
        while self._computing_ahead():
            self._step()

    def _computing_ahead(self, slot: Slot | None = None, job: Job | None = None) -> bool:
        """Whether a turn is being computed ahead (for `slot`'s model; continued by `job`)."""
        slots = [slot] if slot is not None else self.pool.slots.values()
        return any(
            isinstance(s, Ahead) and (job is None or s.continued_by(job)) for one in slots for s in one.active.values()
        )

    def _fail_slot(self, slot: Slot, error: Exception) -> None:
        for uid, seq in list(slot.active.items()):
            if isinstance(seq, Sequence):
                self.out.error(seq.job.id, "api_error", f"generation failed: {error}", retryable=True)
                self._leave(seq, None, None)
            else:
                slot.active.pop(uid, None)
        slot.reset_batch()

    def _status(self) -> dict[str, Any]:
        slots = list(self.pool.slots.values())
        disk = self.pool.disk
        return {
            "pid": os.getpid(),
            "models": [slot.status() for slot in self.pool.slots.values()],
            "pending": len(self._pending),
            "active_sequences": len(self._running),
            "computing_ahead": sum(isinstance(s, Ahead) for slot in slots for s in slot.active.values()),
            "loads": self.pool.loads,
            "unloads": self.pool.unloads,
            "limits": self.pool.limits(),
            "batch": vars(self.stats).copy(),
            "prompt_cache": {
                **vars(self.pool.cache_stats),
                "memory_entries": sum(len(s.prompt_cache) for s in slots),
                "memory_bytes": sum(s.prompt_cache.nbytes for s in slots),
                "disk": disk.status() if disk is not None else None,
            },
            "memory": {
                "active_bytes": mx.get_active_memory(),
                "peak_bytes": mx.get_peak_memory(),
                "cache_bytes": mx.get_cache_memory(),
            },
        }
