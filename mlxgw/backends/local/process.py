"""The daemon's end of the pipe to one worker process (asyncio; imports no MLX)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from mlxgw.worker.frames import MAX_FRAME_BYTES, SHUTDOWN_S, decode, encode

log = logging.getLogger("mlxgw.worker")

# What a request's inbox receives when the worker process is gone.
GONE: dict[str, Any] = {"gone": True}


class WorkerProcess:
    """A running worker: sends frames, routes the answers to each request's inbox."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ids = itertools.count(1)
        self._inboxes: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self.ready = asyncio.get_running_loop().create_future()
        self.last_frame_at = time.monotonic()
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self._killed = False
        self._tasks = [
            asyncio.create_task(self._read_frames(), name="worker-frames"),
            asyncio.create_task(self._read_logs(), name="worker-logs"),
        ]

    @classmethod
    async def spawn(cls, argv: Sequence[str], env: dict[str, str]) -> WorkerProcess:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=MAX_FRAME_BYTES,
            # Its own session: a Ctrl-C in the daemon's terminal must not kill streams the daemon is
            # draining. The worker still dies with the daemon: it exits when its stdin closes.
            start_new_session=True,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return not self._killed and self._process.returncode is None and not self._tasks[0].done()

    def open(self) -> tuple[int, asyncio.Queue[dict[str, Any]]]:
        """A new request id and the inbox its answers arrive in."""
        rid = next(self._ids)
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._inboxes[rid] = inbox
        if not self.alive:
            inbox.put_nowait(GONE)
        return rid, inbox

    def discard(self, rid: int) -> None:
        self._inboxes.pop(rid, None)

    def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame for the worker; never blocks (so it is safe in `finally` blocks)."""
        stdin = self._process.stdin
        if stdin is None or stdin.is_closing():
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            stdin.write(encode(frame))

    async def close(self, timeout: float = SHUTDOWN_S) -> None:
        """Ask the worker to stop; kill it if it has not within `timeout`."""
        if self._process.returncode is None:
            self.send({"op": "shutdown"})
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._process.stdin.close()
            try:
                await asyncio.wait_for(self._process.wait(), timeout)
            except TimeoutError:
                self.kill()
                await self._process.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def kill(self) -> None:
        self._killed = True  # dead from now on, though the pipe may take a moment to close
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()

    async def _read_frames(self) -> None:
        stdout = self._process.stdout
        try:
            while line := await stdout.readline():
                self.last_frame_at = time.monotonic()
                frame = decode(line)
                rid = frame.get("id")
                if rid is None:
                    if not self.ready.done():
                        self.ready.set_result(frame.get("result", {}))
                    continue
                inbox = self._inboxes.get(rid)
                if inbox is not None:
                    inbox.put_nowait(frame)
        except (ValueError, asyncio.LimitOverrunError, ConnectionError):
            log.exception("unreadable frame from the local worker")
            self.kill()
        finally:
            # The pipe closed: the worker exited or was killed. Nobody waits forever.
            with contextlib.suppress(ProcessLookupError, TimeoutError):
                await asyncio.wait_for(self._process.wait(), 5)
            if not self.ready.done():
                self.ready.set_exception(ConnectionError("the local worker exited while starting"))
            for inbox in self._inboxes.values():
                inbox.put_nowait(GONE)

    async def _read_logs(self) -> None:
        stderr = self._process.stderr
        while line := await stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self.stderr_tail.append(text)
            log.debug("[worker %s] %s", self.pid, text)


def worker_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    # Loading never downloads (a request would wait minutes): a model that is not on disk fails at
    # once, and `mlxgw models pull` downloads it with a progress bar.
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update(extra or {})
    return env
