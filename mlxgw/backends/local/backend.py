"""The local backend: models run by MLX in a supervised worker process.

The daemon never imports MLX. It starts `python -m mlxgw.worker` on first use, sends it requests
as frames over a pipe and turns the frames that come back into canonical events. A worker that
dies fails the requests in flight with a retryable error and is started again, with backoff, by
the next request.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from mlxgw import paths
from mlxgw.backends.local.messages import to_constraint, to_hf_messages, to_hf_tools
from mlxgw.backends.local.process import GONE, WorkerProcess, worker_env
from mlxgw.canonical import ChatRequest, Event, Finish, Progress, Start
from mlxgw.errors import UpstreamError
from mlxgw.settings import LocalSettings
from mlxgw.wires.fields import cannot, capped
from mlxgw.worker.frames import Job, event_from_wire

log = logging.getLogger("mlxgw.local")

# Restart delays after consecutive crashes: 0.25 s, 0.5 s, 1 s ... at most 8 s.
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 8.0
WORKER_START_MIN_S = 60.0  # the least time a starting worker is given to say it is ready


ModelMap = dict[str, str] | Callable[[], dict[str, str]]


class LocalBackend:
    """Local MLX models, by the names in `models` (name -> model directory or HF repo id).

    Only those names load: any other model, a path included, fails with a retryable
    `not_found` error so the dispatcher can go elsewhere.

    Sampling: temperature 0 is greedy; a request without a temperature (or top_p, top_k, min_p)
    gets the model's generation_config.json value, else temperature 1.0 (the OpenAI and Anthropic
    default). A request with a seed runs alone, so it is reproducible. max_tokens defaults to
    [local] default_max_tokens and is clamped to what the context leaves after the prompt; a prompt
    the context cannot take is refused before generation, in Anthropic's words and with OpenAI's
    code (`context_length_exceeded`), so agents compact their conversation.
    """

    name = "local"
    kind = "local"

    def __init__(
        self,
        *,
        models: ModelMap,
        settings: LocalSettings | None = None,
        python: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self._models = models
        self.settings = settings or LocalSettings()
        self._python = python or sys.executable  # the worker's interpreter
        self._env = env or {}  # added to the worker's environment
        self._worker: WorkerProcess | None = None
        self._starting: asyncio.Task[WorkerProcess] | None = None
        self._configuring: set[asyncio.Task] = set()
        self._crashes = 0  # consecutive, for the backoff; a finished request resets it
        self._died_at = 0.0
        self.restarts = 0

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self._ensure_worker()

    def configure(self, settings: LocalSettings) -> None:
        """New settings (a reloaded config's [local]), applied live: the daemon's own timeouts from
        the next wait on, the worker's limits sent to the running worker, which takes them as they
        are (a worker started later gets them at its start)."""
        old, self.settings = self.settings, settings
        worker = self._worker
        if _worker_limits(self.settings) != _worker_limits(old) and worker is not None and worker.alive:
            self._send_limits(worker)

    def _send_limits(self, worker: WorkerProcess) -> None:
        task = asyncio.create_task(self._call({"op": "configure", **_worker_limits(self.settings)}, worker=worker))
        self._configuring.add(task)
        task.add_done_callback(self._configured)

    def _configured(self, task: asyncio.Task) -> None:
        self._configuring.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("the local worker did not take the new [local] settings: %s", task.exception())

    async def close(self) -> None:
        for task in self._configuring:
            task.cancel()
        if self._starting is not None:
            # A start in progress kills what it spawned when cancelled.
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        if self._worker is not None:
            await self._worker.close()
            self._worker = None

    # ---- the Backend protocol -------------------------------------------------------------

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Event | Progress]:
        refuse_unsupported(request)
        tools = to_hf_tools(request)
        job = Job(
            id=0,  # the worker's request id, set below
            name=model,
            path=self._path(model),
            messages=to_hf_messages(request),
            tools=tools,
            max_tokens=capped(request.max_tokens, request.output_ceiling) or self.settings.default_max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=request.top_k,
            min_p=request.min_p,
            stop=request.stop,
            seed=request.seed,
            thinking_budget=request.thinking_budget,
            constraint=to_constraint(request, tools),
        )
        worker = await self._ensure_worker()
        rid, inbox = worker.open()
        finished = False
        try:
            job.id = rid
            worker.send(job.to_frame())
            while not finished:
                reply = await self._next(worker, inbox)
                if "error" in reply:
                    finished = True
                    raise self._error(reply["error"])
                if "progress" in reply:  # a long prompt filling: nothing to send, but alive
                    yield Progress(*reply["progress"])
                for item in reply.get("ev", ()):
                    event = event_from_wire(item)
                    if isinstance(event, Start):
                        event.model = model
                    elif isinstance(event, Finish):
                        finished = True
                        self._crashes = 0
                    yield event
        finally:
            worker.discard(rid)
            if not finished:
                # The consumer left (client gone, task cancelled): the sequence leaves the batch.
                worker.send({"op": "cancel", "id": rid})

    async def count_tokens(self, request: ChatRequest, model: str) -> int:
        result = await self._call(
            {
                "op": "count",
                "name": model,
                "path": self._path(model),
                "messages": to_hf_messages(request),
                "tools": to_hf_tools(request),
            }
        )
        return result["tokens"]

    # ---- management -----------------------------------------------------------------------

    async def load(self, model: str) -> dict[str, Any]:
        """Load `model` now (it stays loaded like any other); returns its status."""
        return await self._call({"op": "load", "name": model, "path": self._path(model)})

    async def unload(self, model: str) -> str:
        """The model's new state: unloaded, not_loaded, or unloading (once its requests finish)."""
        path = self._path(model)
        if self._worker is None or not self._worker.alive:
            return "not_loaded"
        return (await self._call({"op": "unload", "name": model, "path": path}))["state"]

    async def status(self) -> dict[str, Any]:
        """The worker process, the loaded models and the batching figures. Starts nothing."""
        worker = self._worker
        running = worker is not None and worker.alive
        info: dict[str, Any] = {
            "running": running,
            "pid": worker.pid if running else None,
            "restarts": self.restarts,
            "settings": {**_worker_limits(self.settings), "first_byte_timeout_s": self.settings.policy.first_byte_timeout_s},
        }
        if running:
            info.update(await self._call({"op": "status"}, worker=worker))
        return info

    # ---- internals ------------------------------------------------------------------------

    def _path(self, model: str) -> str:
        models = self._models() if callable(self._models) else self._models
        path = models.get(model)
        if path is None:
            raise UpstreamError(
                "not_found",
                f"no local model is named {model!r}",
                backend=self.name,
                retryable=True,
                code="model_not_found",
            )
        if path.startswith(("/", "~", ".")) and not Path(path).expanduser().is_dir():
            # A directory that is not there: say so now rather than after starting a worker.
            raise UpstreamError(
                "unavailable",
                f"local model {model!r}: no directory at {path}",
                backend=self.name,
                retryable=True,
                code="model_unavailable",
            )
        return path

    async def _ensure_worker(self) -> WorkerProcess:
        """The running worker, started if need be. Every request waiting for a start shares one,
        and the start is shielded from them: a request that gives up while the worker starts (its
        client went away) leaves the start to finish, so the process is tracked, never orphaned."""
        worker = self._worker
        if worker is not None and worker.alive:
            return worker
        if self._starting is None:
            self._starting = asyncio.create_task(self._start_worker(), name="local-worker-start")
            self._starting.add_done_callback(self._started)
        return await asyncio.shield(self._starting)

    def _started(self, task: asyncio.Task[WorkerProcess]) -> None:
        self._starting = None
        if not task.cancelled():
            task.exception()  # a failed start is raised to its waiters; with none left, it is not an error

    async def _start_worker(self) -> WorkerProcess:
        worker = self._worker
        if worker is not None:
            await worker.close(timeout=1)
            self._worker = None
            self._crashes += 1
            self._died_at = time.monotonic()
            self.restarts += 1
        if self._crashes:
            delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (self._crashes - 1))
            await asyncio.sleep(max(0.0, self._died_at + delay - time.monotonic()))
        limits = _worker_limits(self.settings)
        try:
            worker = await WorkerProcess.spawn(self._argv(), worker_env(self._env))
        except OSError as e:  # e.g. the configured python does not exist
            raise UpstreamError(
                "unavailable", f"the local worker did not start: {e}", backend=self.name, retryable=True
            ) from e
        try:
            # Starting takes a Python and MLX import, seconds on a busy machine: more than a first byte may.
            start_s = max(self.settings.policy.first_byte_timeout_s, WORKER_START_MIN_S)
            await asyncio.wait_for(asyncio.shield(worker.ready), start_s)
        except BaseException as e:
            worker.ready.cancel()
            worker.kill()
            await asyncio.shield(worker.close(timeout=1))
            if not isinstance(e, TimeoutError | ConnectionError):
                raise  # cancelled (the gateway is closing): the process is gone with it
            self._crashes += 1
            self._died_at = time.monotonic()
            tail = " | ".join(list(worker.stderr_tail)[-3:])
            raise UpstreamError(
                "unavailable",
                f"the local worker did not start: {tail or e}",
                backend=self.name,
                retryable=True,
            ) from e
        self._worker = worker
        if _worker_limits(self.settings) != limits:
            self._send_limits(worker)  # the config changed while it started
        return worker

    def _argv(self) -> list[str]:
        s = self.settings
        argv = [self._python, "-m", "mlxgw.worker"]
        argv += ["--max-loaded-models", str(s.max_loaded_models)]
        argv += ["--idle-unload-s", str(s.idle_unload_s or 0)]
        argv += ["--prompt-cache-gb", str(s.prompt_cache_gb)]
        argv += ["--cache-dir", str(paths.prompt_cache_dir()), "--disk-cache-gb", str(s.disk_cache_gb)]
        argv += ["--prefill-step-size", str(s.prefill_step_size)]
        if s.memory_limit_gb:
            argv += ["--memory-limit-gb", str(s.memory_limit_gb)]
        return argv

    async def _next(self, worker: WorkerProcess, inbox: asyncio.Queue) -> dict[str, Any]:
        timeout = self.settings.policy.first_byte_timeout_s
        try:
            reply = await asyncio.wait_for(inbox.get(), timeout)
        except TimeoutError:
            if time.monotonic() - worker.last_frame_at >= timeout:
                # Silent on every request, not just this one: it is wedged. The next request
                # starts a fresh one.
                worker.kill()
            raise UpstreamError(
                "timeout",
                f"the local worker sent nothing for {timeout:g} s",
                backend=self.name,
                retryable=True,
            ) from None
        if reply is GONE:
            raise UpstreamError("unavailable", "local worker crashed", backend=self.name, retryable=True)
        return reply

    async def _call(self, frame: dict[str, Any], *, worker: WorkerProcess | None = None) -> dict[str, Any]:
        worker = worker or await self._ensure_worker()
        rid, inbox = worker.open()
        try:
            worker.send({**frame, "id": rid})
            reply = await self._next(worker, inbox)
        finally:
            worker.discard(rid)
        if "error" in reply:
            raise self._error(reply["error"])
        return reply["result"]

    def _error(self, error: dict[str, Any]) -> UpstreamError:
        return UpstreamError(
            error["kind"],
            error["message"],
            backend=self.name,
            retryable=error.get("retryable", False),
            code=error.get("code"),
        )


def refuse_unsupported(request: ChatRequest) -> None:
    """A 400 naming what the worker cannot do yet, rather than an answer that silently ignores it."""
    if request.logprobs or request.top_logprobs:
        raise cannot("logprobs" if request.logprobs else "top_logprobs", "local models do not return log probabilities yet")


def _worker_limits(settings: LocalSettings) -> dict[str, Any]:
    """The settings the worker process goes by (its command line, or a "configure" frame)."""
    return {
        "max_loaded_models": settings.max_loaded_models,
        "idle_unload_s": settings.idle_unload_s or 0,
        "memory_limit_gb": settings.memory_limit_gb,
        "prompt_cache_gb": settings.prompt_cache_gb,
        "disk_cache_gb": settings.disk_cache_gb,
    }
