"""The daemon's own log: `<home>/logs/mlxgw.log`, one line per record, rotated by size.

Each line is `TIME LEVEL LOGGER MESSAGE`, TIME in UTC to the millisecond, e.g.

    2025-06-01T09:30:12.345Z INFO mlxgw.server client went away during req_…; upstream cancelled

A traceback stays on its record's line (newlines written as ` ⏎ `), so `grep`, `tail -n` and
`mlxgw logs -n` count records, not fragments. Anything that looks like a credential (provider keys,
mlxgw client keys, bearer tokens, api-key fields) is masked before a line is written: keys must
never reach a file that people paste into bug reports.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from mlxgw import paths

LOG_NAME = "mlxgw.log"
# What escapes logging (a crash before logging starts, stray prints) when the daemon runs detached.
OUTPUT_NAME = "mlxgw.out"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
NEWLINE = " ⏎ "
MASK = "[redacted]"

_SECRETS = [
    # "Bearer <token>" in any header or message
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    # key: value / key=value / "key": "value" for the fields that hold credentials
    re.compile(
        r"(?i)((?:x-api-key|api[_-]?key|authorization|secret[_-]?key|access[_-]?token)[\"']?\s*[:=]\s*[\"']?)"
        r"(?!bearer\s)[^\s\"',;]+"
    ),
    # the shapes of OpenAI/Anthropic keys (sk-…, sk-ant-…, sk-proj-…) and mlxgw client keys (mgw-…)
    re.compile(r"()\b(?:sk|mgw)-[A-Za-z0-9_\-]{6,}"),
]


def redact(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class LineFormatter(logging.Formatter):
    """`TIME LEVEL LOGGER MESSAGE` on one line, credentials masked."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        return text.replace("\r\n", "\n").rstrip("\n").replace("\n", NEWLINE)


def level_from_env() -> int:
    """$MLXGW_LOG_LEVEL (debug, info, warning, error): debug adds one line per request."""
    name = os.environ.get("MLXGW_LOG_LEVEL", "info").upper()
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.INFO


def log_path() -> Path:
    return paths.log_dir() / LOG_NAME


def output_path() -> Path:
    return paths.log_dir() / OUTPUT_NAME


def setup(*, console: bool, max_bytes: int = MAX_BYTES, backups: int = BACKUPS, level: int = logging.INFO) -> Path:
    """Send every record to the rotating log file, and to stderr too when `console` (a foreground
    `serve` in a terminal). Replaces whatever handlers the root logger had."""
    path = log_path()
    formatter = LineFormatter()
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    ]
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    return path


def tail(path: Path, n: int) -> list[str]:
    """The last `n` lines of `path` (reading backwards in blocks: the file may be 10 MB)."""
    if n <= 0:
        return []
    if not path.exists():
        return []
    with open(path, "rb") as f:
        end = f.seek(0, 2)
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= n:
            step = min(64 * 1024, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
    return data.decode("utf-8", "replace").splitlines()[-n:]


def follow(path: Path, poll_s: float = 0.25) -> Iterator[str]:
    """Lines appended to `path` from now on, forever; follows the file across rotations."""
    f = None
    identity = None
    try:
        while True:
            if f is None:
                try:
                    f = open(path, "rb")  # noqa: SIM115 - kept open across polls, closed on rotation or exit
                except FileNotFoundError:
                    time.sleep(poll_s)
                    continue
                if identity is None:
                    f.seek(0, 2)  # only what comes after the lines already shown
                identity = os.fstat(f.fileno()).st_ino
            line = f.readline()
            if line.endswith(b"\n"):
                yield line.decode("utf-8", "replace").rstrip("\n")
                continue
            if line:
                f.seek(-len(line), 1)  # half a record: wait for the rest of it
            time.sleep(poll_s)
            try:
                rotated = os.stat(path).st_ino != identity
            except FileNotFoundError:
                rotated = True
            if rotated:
                # Whatever the old file still had was read above; the new one is read from its start.
                f.close()
                f = None
    finally:
        if f is not None:
            f.close()
