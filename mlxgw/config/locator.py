"""Pointing a config error at its line: `FILE:LINE: section.key: reason`."""

from __future__ import annotations

import re
from pathlib import Path

from mlxgw.errors import ConfigError


class Locator:
    """Finds the line of a key in the TOML text, so errors can point at it."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def error(self, message: str, at: tuple, key: str | None) -> ConfigError:
        name = ".".join(str(p) for p in at if not isinstance(p, int))
        if at and isinstance(at[-1], int):
            name = f"{name}[{at[-1]}]"
        if key:
            name = f"{name}.{key}" if name else key
        line = self._line(at, key)
        location = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{location}: {name}: {message}", reason=message)

    def _line(self, at: tuple, key: str | None) -> int | None:
        header = self._header_line(at)
        if key is None:
            return header
        if not at:
            for n, text in enumerate(self.lines):
                if re.match(rf"^\s*\[+\s*{re.escape(key)}\s*[\].]", text):
                    return n + 1
        key_re = re.compile(rf'^\s*("{re.escape(key)}"|{re.escape(key)})\s*=')
        for n in range(header or 0, len(self.lines)):
            text = self.lines[n]
            if text.lstrip().startswith("["):
                break
            if key_re.match(text):
                return n + 1
        return header

    def _header_line(self, at: tuple) -> int | None:
        if not at:
            return None
        if isinstance(at[-1], int):
            wanted, count = ".".join(at[:-1]), at[-1]
            seen = -1
            for n, text in enumerate(self.lines):
                if re.match(rf"^\s*\[\[\s*{re.escape(wanted)}\s*\]\]", text):
                    seen += 1
                    if seen == count:
                        return n + 1
            return None
        name = ".".join(at)
        for n, text in enumerate(self.lines):
            m = re.match(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", text)
            if m and m.group(1).replace('"', "") == name:
                return n + 1
        return None
