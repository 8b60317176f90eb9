"""`python -m mlxgw.worker`: the worker process.

Frames come in on stdin and go out on stdout (see `frames`); logs go to stderr. The main thread
reads frames, the engine thread runs the models, a writer thread sends what the engine produced,
in as few writes as it can. The worker exits when stdin closes, so it never outlives the daemon.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

from mlxgw.settings import LocalSettings
from mlxgw.worker.frames import SHUTDOWN_S, decode, encode, merge_frames


class FrameWriter:
    """Writes lists of frames from any thread, whatever is ready in one write."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._queue: queue.SimpleQueue[list[dict[str, Any]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="frame-writer", daemon=True)
        self._thread.start()

    def send(self, frames: list[dict[str, Any]]) -> None:
        self._queue.put(frames)

    def _run(self) -> None:
        while True:
            frames = self._queue.get()
            try:
                while True:
                    frames.extend(self._queue.get_nowait())
            except queue.Empty:
                pass
            try:
                self._out.write(b"".join(encode(f) for f in merge_frames(frames)))
                self._out.flush()
            except (BrokenPipeError, ValueError):
                os._exit(0)  # the daemon is gone


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlxgw.worker", description=__doc__)
    defaults = LocalSettings()
    parser.add_argument("--max-loaded-models", type=int, default=defaults.max_loaded_models)
    parser.add_argument("--idle-unload-s", type=float, default=defaults.idle_unload_s, help="0 keeps models loaded")
    parser.add_argument("--memory-limit-gb", type=float, default=defaults.memory_limit_gb)
    parser.add_argument("--prompt-cache-gb", type=float, default=defaults.prompt_cache_gb)
    parser.add_argument("--cache-dir", type=Path, help="where long prompts' caches are kept across restarts")
    parser.add_argument("--disk-cache-gb", type=float, default=defaults.disk_cache_gb, help="0: no disk cache")
    parser.add_argument(
        "--prefill-step-size", type=int, default=defaults.prefill_step_size, help="prompt tokens computed per step"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    # Frames own the real stdout; anything a library prints lands on stderr instead.
    frames_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="mlxgw-worker %(levelname)s %(message)s"
    )

    # mlx is imported here (by the engine and the pool), in the worker process only.
    from mlxgw.worker.disk_cache import DiskCache
    from mlxgw.worker.engine import Engine
    from mlxgw.worker.pool import ModelPool

    gb = 1024**3
    pool = ModelPool(
        max_loaded=args.max_loaded_models,
        idle_unload_s=args.idle_unload_s or None,
        memory_limit_bytes=int(args.memory_limit_gb * gb) if args.memory_limit_gb else None,
        prompt_cache_bytes=int(args.prompt_cache_gb * gb),
        prefill_step_size=max(1, args.prefill_step_size),
        disk=DiskCache(args.cache_dir, int(args.disk_cache_gb * gb)) if args.cache_dir else None,
    )
    writer = FrameWriter(frames_out)
    engine = Engine(pool, writer.send)
    thread = threading.Thread(target=engine.run, name="mlx-engine", daemon=True)
    thread.start()
    writer.send([{"id": None, "result": {"ready": True, "pid": os.getpid()}}])

    for line in sys.stdin.buffer:
        frame = decode(line)
        if frame.get("op") == "shutdown":
            break
        engine.submit(frame)
    engine.stop()
    stopping = time.monotonic()
    thread.join(timeout=10)
    if pool.disk is not None:
        # The caches of the last requests are still being written: a restart should find them.
        pool.disk.flush(timeout=max(0.0, SHUTDOWN_S - 1.0 - (time.monotonic() - stopping)))
    # Skip interpreter teardown: destroying MLX's threads there aborts the process.
    os._exit(0)


if __name__ == "__main__":
    main()
