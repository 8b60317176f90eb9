"""`mlxgw models`: local MLX models — the offline demo model, what is configured, what is loaded,
the prompt cache kept on disk."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mlxgw import paths
from mlxgw.cli.output import console, emit_json, err_console
from mlxgw.daemon import calls as daemon
from mlxgw.dispatch import route_table
from mlxgw.errors import MlxgwError
from mlxgw.settings import MappingSettings
from mlxgw.store.mappings import load_mappings
from mlxgw.workspace import Workspace

app = typer.Typer(help="Local MLX models.", no_args_is_help=True)


@app.command("demo")
def demo(
    directory: Path | None = typer.Argument(None, help="Where to build it (default: <home>/models/demo)."),
    no_map: bool = typer.Option(False, "--no-map", help="Do not add the mapping demo -> local."),
) -> None:
    """Build the tiny offline demo model (random weights, nothing downloaded) and map it as `demo`."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" banner
    from mlxgw.worker.demo import build_demo_model

    target = (directory or paths.models_dir() / "demo").expanduser().resolve()
    # In the default place the mapping can say just "demo" (resolved under <home>/models).
    model = "demo" if directory is None else str(target)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err_console, transient=True) as bar:
        task = bar.add_task("building the demo model", total=None)
        build_demo_model(target, progress=lambda line: bar.update(task, description=line))
    console.print(f"demo model ready in {target}", markup=False, highlight=False)
    if no_map:
        return
    ws = Workspace.open()
    existing = next((m for m in ws.settings.mappings if m.pattern == "demo"), None)
    if existing is not None:
        if existing.backend != "local" or existing.model != model:
            err_console.print(f"[yellow]note:[/] a mapping for 'demo' already exists ({escape(f'{existing.backend}:{existing.model}')}); left as is", highlight=False)
        return
    with ws.edit() as editor:
        editor.add_mapping(MappingSettings("demo", "local", model))
    console.print(f"mapped [bold]demo[/] → local:{escape(model)}", highlight=False)


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else "—"


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Configured local models: loaded or not, memory, last used."""
    ws = Workspace.open()
    configured = route_table.local_models(load_mappings())
    loaded: dict[str, dict] = {}
    reachable = daemon.running(ws.settings)
    if reachable:
        status = daemon.call(ws.settings, "GET", "/mlxgw/models")
        loaded = {m["name"]: m for m in (status.get("worker") or {}).get("models", [])}
    rows = [
        {
            "name": name,
            "loaded": name in loaded,
            "memory_bytes": loaded.get(name, {}).get("memory_bytes"),
            "last_used": loaded.get(name, {}).get("last_used"),
            "active_sequences": loaded.get(name, {}).get("active_sequences", 0),
        }
        for name in sorted(set(configured) | set(loaded))
    ]
    if as_json:
        emit_json({"daemon_running": reachable, "models": rows})
        return
    table = Table("model", "loaded", "memory", "last used", "generating")
    for r in rows:
        memory = f"{r['memory_bytes'] / 2**20:.1f} MiB" if r["memory_bytes"] else "—"
        table.add_row(Text(r["name"]), "yes" if r["loaded"] else "no", memory, _when(r["last_used"]), str(r["active_sequences"]))
    console.print(table)
    if not reachable:
        err_console.print("[dim]daemon not running: load state unknown[/]")


def _named(name: str) -> str:
    if name not in route_table.local_models(load_mappings()):
        raise MlxgwError(f"no mapping names a local model {name!r} (see `mlxgw models list`)")
    return quote(name, safe="")


@app.command("load")
def load(name: str = typer.Argument(..., help="A local model as `models list` names it.")) -> None:
    """Load a local model in the running daemon now."""
    ws = Workspace.open()
    with console.status(Text(f"loading {name}…")):
        daemon.call(ws.settings, "POST", f"/mlxgw/models/{_named(name)}/load", timeout=600)
    console.print(f"loaded [bold]{escape(name)}[/]", highlight=False)


@app.command("unload")
def unload(name: str = typer.Argument(..., help="A local model as `models list` names it.")) -> None:
    """Unload a local model from the running daemon."""
    ws = Workspace.open()
    result = daemon.call(ws.settings, "POST", f"/mlxgw/models/{_named(name)}/unload")
    console.print(f"{name}: {result.get('result')}", markup=False, highlight=False)


@app.command("cache")
def cache(
    clear: bool = typer.Option(
        False,
        "--clear",
        help="Remove every entry, daemon running or not (a running worker keeps what it holds in memory "
        "until the model unloads: `mlxgw models unload NAME`).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The prompt cache on disk: long prompts' KV caches, kept across restarts, per model."""
    from mlxgw.worker import disk_cache

    root = paths.prompt_cache_dir()
    if clear:
        entries, size = disk_cache.clear(root)
        if as_json:
            emit_json({"dir": str(root), "removed_entries": entries, "removed_bytes": size})
        else:
            console.print(f"removed {entries} entries ({_size(size)}) from {root}", markup=False, highlight=False)
        return
    budget = Workspace.open().settings.local.disk_cache_gb
    models = disk_cache.summary(root)
    if as_json:
        emit_json({"dir": str(root), "max_bytes": int(budget * 2**30), "models": models})
        return
    table = Table("model", "entries", "size", "longest prompt", "last used")
    for m in models:
        table.add_row(Text(m["model"]), str(m["entries"]), _size(m["bytes"]), f"{m['longest_tokens']} tokens", _when(m["last_used"]))
    console.print(table)
    total = sum(m["bytes"] for m in models)
    err_console.print(f"[dim]{_size(total)} of {budget:g} GiB (\\[local] disk_cache_gb) in {escape(str(root))}[/]", highlight=False)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@app.command("pull")
def pull(repo: str = typer.Argument(..., help="A Hugging Face repo id, e.g. mlx-community/Qwen3-4B-4bit.")) -> None:
    """Download a model from Hugging Face into the local cache (with progress), so it loads offline."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    patterns = ["*.json", "*.safetensors", "*.py", "*.model", "*.tiktoken", "*.txt", "*.jinja"]
    try:
        where = snapshot_download(repo, allow_patterns=patterns)
    except HFValidationError:
        raise MlxgwError(f"{repo!r} is not a Hugging Face repo id (expected OWNER/NAME)") from None
    except Exception as exc:  # offline, unknown repo, gated repo: one line, the library's own reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MlxgwError(f"could not download {repo}: {reason}") from None
    console.print(f"downloaded [bold]{escape(repo)}[/] to {escape(str(where))}", highlight=False)
    if repo not in route_table.local_models(load_mappings()):
        console.print(f"[dim]map it with: mlxgw map add {escape(repo.split('/')[-1])} local --model {escape(repo)}[/]", highlight=False)
