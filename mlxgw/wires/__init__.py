"""Wire protocols: pure translation between each API's JSON/SSE and the canonical model.

`WIRES` lists them; a new protocol is one package here whose module implements `base.Wire` (both
faces) and one entry in that table. `client_wire` picks the protocol a client's HTTP request speaks.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlxgw.wires import anthropic, openai, responses
from mlxgw.wires.base import Wire

WIRES: dict[str, Wire] = {wire.name: wire for wire in (anthropic, openai, responses)}  # modules, each a Wire
DEFAULT: Wire = openai  # for paths no wire claims (errors on unknown endpoints, /health)


def client_wire(path: str, headers: Mapping[str, str]) -> Wire:
    """The protocol a client speaks, judged by the path it called (or, for shared paths, its headers)."""
    for wire in WIRES.values():
        if wire.claims(path, headers):
            return wire
    return DEFAULT
