"""The machine a run measured, the results table, the JSON file under bench-results/."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.procs import ROOT

console = Console(highlight=False)
if not console.is_terminal:  # a log file or a pipe: wide enough that the tables do not fold
    console = Console(highlight=False, width=150)
RESULTS = ROOT / "bench-results"


def machine() -> dict:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "mlx": version("mlx"),
        "mlx_lm": version("mlx-lm"),
        "aiohttp": version("aiohttp"),
        "mlxgw": version("mlxgw"),
    }


def machine_line(m: dict) -> str:
    return (f"{m['cores']} cores ({m['cpu'] or 'unknown cpu'}), {m['platform']}, python {m['python']}, "
            f"mlx {m['mlx']}, mlx-lm {m['mlx_lm']}, aiohttp {m['aiohttp']}")


def fmt(v, digits: int = 2, suffix: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{suffix}"
    return f"{v}{suffix}"


def table(title: str, columns: list[str], rows: list[list]) -> None:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[r if isinstance(r, str) else fmt(r) for r in row])
    console.print(t)


def targets_table(targets: list[dict]) -> None:
    rows = []
    for t in targets:
        verdict = "[green]met[/]" if t["met"] else ("[red]missed[/]" if t["met"] is False else "[yellow]n/a[/]")
        rows.append([t["name"], t["target"], fmt(t["measured"], 3) if isinstance(t["measured"], float) else str(t["measured"]), verdict])
    table("targets (reported, not asserted)", ["target", "wanted", "measured", ""], rows)


def target(name: str, wanted: str, measured: float | None, met: bool | None) -> dict:
    return {"name": name, "target": wanted, "measured": measured, "met": met}


def save(kind: str, results: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{kind}-{stamp}.json"
    doc = {"benchmark": kind, "time": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(), **results}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    console.print(f"results written to {path.relative_to(ROOT)}")
    return path
