"""`mlxgw launch claude|codex [ARGS…]`: a coding agent run against this gateway, everything set.

The agent gets the daemon's address (started first if it is not running), a client key when the
gateway has any, and model names the mappings answer; then it replaces this process, with the
user's arguments as they were given.
"""

from __future__ import annotations

import enum
import json
import os
import shlex
import shutil
import sys
import time
import urllib.error
import urllib.request
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import typer

from mlxgw import paths
from mlxgw.cli.output import console, err_console, open_workspace
from mlxgw.errors import CredentialError, MlxgwError

PRINT_HELP = "Print the agent's environment and command line (shell-quoted, key masked) instead of running it."
MODEL_HELP = "The model name every request of the agent asks for (default: from the mappings)."
KEY_HELP = (
    "A client key for the agent (default: none while the gateway has no keys, else the key "
    "`launch-claude` / `launch-codex`, created on first use and kept encrypted in the home)."
)
BIN_HELP = "The agent's executable (default: `claude` / `codex` on PATH)."

# Both agents refuse to start without some key; a gateway without client keys takes any.
NO_KEY = "unused"
KEY_ENV = "MLXGW_API_KEY"  # where Codex reads the key (its provider's env_key), as in the README
# Variables that would send Claude Code elsewhere, or put another key in `x-api-key` (which the
# gateway reads before `Authorization`): not passed on.
CLAUDE_UNSET = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX")
# Claude Code 2.1 asks for each tier's model by these variables (ANTHROPIC_SMALL_FAST_MODEL is the
# older name of the haiku one, still read); without them it sends its own names, which the probes
# below are shaped like: a mapping pattern that takes a probe takes that tier as it is.
CLAUDE_TIERS = {
    "opus": "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "sonnet": "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "haiku": "ANTHROPIC_DEFAULT_HAIKU_MODEL",
}
CLAUDE_PROBES = {"opus": "claude-opus-4-7", "sonnet": "claude-sonnet-4-6", "haiku": "claude-haiku-4-5"}
CODEX_PROBE = "gpt-5.5"  # a name Codex knows; see CLAUDE_PROBES
RELOAD_WAIT_S = 5.0  # the daemon rereads the store's keys every second


class Agent(enum.StrEnum):
    claude = "claude"
    codex = "codex"


PACKAGES = {Agent.claude: "@anthropic-ai/claude-code", Agent.codex: "@openai/codex"}


@dataclass
class Plan:
    """What the agent is run with: variables set and removed, and its command line."""

    argv: list[str]  # the agent and what mlxgw adds to its arguments
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    secret: str | None = None  # the key in `env`, never shown
    args: list[str] = field(default_factory=list)  # the user's, after the agent's name


def register(app: typer.Typer) -> None:
    # Options come before the agent's name; everything after it is the agent's own (Claude Code's
    # --print and --model, Codex's -c), passed on unchanged.
    app.command(
        "launch",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
    )(launch)


def launch(
    ctx: typer.Context,
    agent: Agent = typer.Argument(..., help="The agent to run: claude (Claude Code) or codex (Codex)."),
    print_only: bool = typer.Option(False, "--print", help=PRINT_HELP),
    model: str | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    api_key: str | None = typer.Option(None, "--api-key", envvar=KEY_ENV, help=KEY_HELP, show_envvar=True),
    agent_bin: Path | None = typer.Option(None, "--agent-bin", help=BIN_HELP),
) -> None:
    """Run Claude Code or Codex against this gateway: its address, a client key, model names from
    the mappings; the daemon is started first if it is not running. Options go before the agent's
    name; what follows it is passed to the agent unchanged (`mlxgw launch claude -p "hi"`)."""
    from mlxgw.dispatch.route_table import RouteTable

    ws = open_workspace()
    # What can fail by itself first: no key is made and no daemon started for a launch that cannot run.
    table = RouteTable(ws.settings.mappings)
    models = claude_models(table, model) if agent is Agent.claude else codex_model(table, model)
    binary = _binary(agent, agent_bin, required=not print_only)
    key, secret = _key(agent, api_key, ws.vault, create=not print_only)
    url = _daemon_url(ws.settings, agent, start=not print_only)
    if secret is not None and not print_only:
        _wait_accepted(url, secret)
    plan = _claude(binary, url, key, models) if agent is Agent.claude else _codex(binary, url, key, models)
    plan.args = ctx.args
    plan.secret = secret
    if print_only:
        console.print(render(plan), markup=False, highlight=False, soft_wrap=True)
        return
    _exec(plan)


def claude_models(table, chosen: str | None) -> dict[str, str]:
    """Claude Code's model variables: `chosen` for every tier; else per tier an exact mapping for a
    Claude model of that tier, else nothing where a pattern takes Claude Code's own name, else the
    first Claude model mapped (or the default one: `demo`, else the first name mapped)."""
    named: dict[str, str] = dict.fromkeys(CLAUDE_TIERS, chosen) if chosen else {}
    if not chosen:
        listed = table.listed()
        claude = [name for name in listed if "claude" in name.lower()]
        for tier in CLAUDE_TIERS:
            exact = next((name for name in claude if tier in name.lower()), None)
            if exact is not None:
                named[tier] = exact
            elif table.resolve(CLAUDE_PROBES[tier]) is None:
                named[tier] = claude[0] if claude else _default_model(listed, Agent.claude)
    env = {CLAUDE_TIERS[tier]: name for tier, name in named.items()}
    if "sonnet" in named:  # the tier Claude Code starts on unless told otherwise
        env["ANTHROPIC_MODEL"] = named["sonnet"]
    if "haiku" in named:
        env["ANTHROPIC_SMALL_FAST_MODEL"] = named["haiku"]
    return env


def codex_model(table, chosen: str | None) -> str | None:
    """The `model` Codex asks for: `chosen`; else the first GPT model mapped by name; else None (its
    own) where a pattern takes a GPT name Codex knows; else the default model mapped."""
    if chosen:
        return chosen
    listed = table.listed()
    gpt = [name for name in listed if "gpt" in name.lower()]
    if gpt:
        return gpt[0]
    if table.resolve(CODEX_PROBE) is not None:
        return None
    return _default_model(listed, Agent.codex)


def _default_model(listed: list[str], agent: Agent) -> str:
    """`demo` if mapped (the local model `mlxgw models demo` builds), else the first name mapped."""
    if "demo" in listed:
        return "demo"
    if listed:
        return listed[0]
    raise MlxgwError(
        f"no mapping answers {agent.value}'s models: add one (`mlxgw map add PATTERN BACKEND`), build the local "
        f"demo (`mlxgw models demo`), or name a model with `mlxgw launch --model NAME {agent.value}`"
    )


def _claude(binary: str, url: str, key: str, models: dict[str, str]) -> Plan:
    # ANTHROPIC_AUTH_TOKEN (sent as `Authorization: Bearer`): unlike ANTHROPIC_API_KEY, an
    # interactive Claude Code takes it without asking to approve it first.
    env = {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_AUTH_TOKEN": key, **models}
    return Plan([binary], env, tuple(v for v in CLAUDE_UNSET if v in os.environ))


def _codex(binary: str, url: str, key: str, model: str | None) -> Plan:
    # `-c key=value` takes a TOML value; a JSON string is a TOML basic string.
    settings = {
        "model_provider": "mlxgw",
        "model_providers.mlxgw.name": "mlxgw",
        "model_providers.mlxgw.base_url": url + "/v1",
        "model_providers.mlxgw.env_key": KEY_ENV,
        "model_providers.mlxgw.wire_api": "responses",
        **({"model": model} if model else {}),
    }
    argv = [binary]
    for name, value in settings.items():
        argv += ["-c", f"{name}={json.dumps(value)}"]
    return Plan(argv, {KEY_ENV: key})


def render(plan: Plan) -> str:
    """The plan as one `env …` command line, a variable or a setting per line, the user's arguments
    last; the key masked."""
    from mlxgw.store.credentials import mask

    words = [["env", *(f"-u {shlex.quote(name)}" for name in plan.unset)]]
    for name, value in plan.env.items():
        shown = mask(value) if plan.secret is not None and value == plan.secret else value
        words.append([f"{name}={shlex.quote(shown)}"])
    words.append([shlex.quote(plan.argv[0])])
    # mlxgw adds only `-c setting` pairs (Codex), one a line
    words += [[shlex.quote(flag), shlex.quote(setting)] for flag, setting in zip(plan.argv[1::2], plan.argv[2::2], strict=True)]
    if plan.args:
        words.append([shlex.quote(arg) for arg in plan.args])
    return " \\\n  ".join(" ".join(w) for w in words)


def _binary(agent: Agent, agent_bin: Path | None, *, required: bool) -> str:
    if agent_bin is not None:
        path = agent_bin.expanduser()
        if required and not (path.is_file() and os.access(path, os.X_OK)):
            raise MlxgwError(f"--agent-bin {path} is not an executable file")
        return str(path)
    found = shutil.which(agent.value)
    if found is not None:
        return found
    missing = f"{agent.value} is not on PATH: install it with `npm install -g {PACKAGES[agent]}`, or pass --agent-bin PATH"
    if required:
        raise MlxgwError(missing)
    err_console.print(f"[yellow]note:[/] {missing}", markup=True, highlight=False, soft_wrap=True)
    return agent.value


def _key(agent: Agent, given: str | None, vault, *, create: bool) -> tuple[str, str | None]:
    """The key the agent sends, and the secret in it to mask: `given`; none needed while the gateway
    has no client keys; else this agent's launch key (created on first use)."""
    from mlxgw.store import client_keys

    known = client_keys.hashes()
    if given:
        if known and client_keys.match(given, known) is None:  # found now, not as a 401 inside the agent
            raise MlxgwError(f"the key from --api-key or ${KEY_ENV} is not a client key of this gateway "
                             "(`mlxgw keys list` shows them)")
        return given, given
    if not known:
        return NO_KEY, None
    key = launch_key(f"launch-{agent.value}", vault, create=create)
    if key is None:  # --print creates nothing
        return f"<the client key launch-{agent.value}, created at launch>", None
    return key, key


def launch_key(name: str, vault, *, create: bool) -> str | None:
    """The client key `name`, known here because launch created it: only its hash is in the store,
    so the key itself is kept beside it, encrypted like the backends' keys. Launch never shows it,
    so when the copy is lost (or the key was revoked) the key is replaced without harm to anyone."""
    from mlxgw.fsutil import write_atomic
    from mlxgw.store import client_keys
    from mlxgw.workspace import home_lock

    path = paths.home() / "launch" / f"{name}.key"
    with home_lock():  # two launches at once create one key, not two clashing ones
        known = client_keys.hashes()
        try:
            kept = vault.decrypt(path.read_text().strip(), name) if path.exists() else None
        except CredentialError:  # a secret key replaced since: a lost copy
            kept = None
        if kept is not None and client_keys.match(kept, known) == name:
            return kept
        if not create:
            return None
        if name in known.values():
            client_keys.revoke(name)
            err_console.print(f"[yellow]note:[/] replaced the client key {name}: its copy in {path} was lost",
                              highlight=False, soft_wrap=True)
        key = client_keys.create(name)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        write_atomic(path, vault.encrypt(key) + "\n", mode=0o600)
        return key


def _daemon_url(settings, agent: Agent, *, start: bool) -> str:
    """The running daemon's address; with `start`, a daemon is started first when none runs."""
    from mlxgw.cli.serve import check_exposure
    from mlxgw.daemon import calls, control
    from mlxgw.daemon.lock import holder

    if holder() is not None:
        return calls.base_url(settings)
    if not start:
        err_console.print(f"[yellow]note:[/] mlxgw is not running; `mlxgw launch {agent.value}` starts it first",
                          highlight=False, soft_wrap=True)
        return calls.base_url(settings)
    check_exposure(settings, False)
    with err_console.status("starting mlxgw…") if err_console.is_terminal else nullcontext():
        info = control.start(control.serve_argv(None, None, False, None))
    # On stderr: the agent's own output (`claude -p`) stays the only thing on stdout.
    err_console.print(
        f"mlxgw started (pid {info.pid}) on {info.url}; it keeps running after {agent.value} exits (`mlxgw stop`)",
        markup=False, highlight=False, soft_wrap=True,
    )
    return info.url


def _wait_accepted(url: str, key: str) -> None:
    """A key created just now reaches a running daemon with its next reload, a second or so later:
    the agent's first request must not meet a 401 meanwhile. Anything but a 401 ends the wait."""
    deadline = time.monotonic() + RELOAD_WAIT_S
    request = urllib.request.Request(url + "/v1/models", headers={"authorization": f"Bearer {key}"})
    while True:
        try:
            with urllib.request.urlopen(request, timeout=RELOAD_WAIT_S):
                return
        except urllib.error.HTTPError as exc:
            if exc.code != 401 or time.monotonic() > deadline:
                return
        except (urllib.error.URLError, OSError):
            return
        time.sleep(0.1)


def _exec(plan: Plan) -> None:
    env = {name: value for name, value in os.environ.items() if name not in plan.unset}
    env.update(plan.env)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(plan.argv[0], [*plan.argv, *plan.args], env)
    except OSError as exc:
        raise MlxgwError(f"cannot run {plan.argv[0]}: {exc.strerror}") from None
