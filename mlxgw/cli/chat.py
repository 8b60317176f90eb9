"""`mlxgw chat`: talk to a model through the running daemon, in a terminal or once from a script."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.text import Text

from mlxgw.cli.output import console, err_console, printable
from mlxgw.errors import MlxgwError

COMMANDS = """\
/model NAME    talk to another model from now on
/system TEXT   set the system prompt (empty: none)
/clear         forget the conversation
/retry         ask the last question again
/save FILE     write the conversation as JSON
/exit          leave (Ctrl-D too); Ctrl-C cancels a reply in progress"""


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)


def chat(
    prompt: str | None = typer.Argument(None, help="Ask this once, print the answer and exit (piped stdin works too)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Default: `demo` if mapped, else the first mapped name."),
    system: str | None = typer.Option(None, "--system", "-s", help="A system prompt."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1, help="Cap each answer's length."),
    backend_info: bool = typer.Option(
        False, "--backend-info", help="After each answer: the backend that gave it, tokens, speed, time to first token."
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="MLXGW_API_KEY", help="A client key, once the gateway has any (`mlxgw keys create`)."
    ),
) -> None:
    """Chat with a model through the running gateway (/help inside lists the commands)."""
    from mlxgw import config, paths
    from mlxgw.daemon.calls import Conversation, DaemonClient, base_url

    client = DaemonClient(base_url(config.load(paths.config_path())), api_key)
    names = client.models()  # also tells, in one line, when no daemon answers
    conversation = Conversation(model or _default_model(names), system or None)
    if prompt is None and not sys.stdin.isatty():
        prompt = sys.stdin.read().strip()
        if not prompt:
            raise MlxgwError("nothing to ask: stdin was empty")
    view = _View(backend_info, rich=sys.stdout.isatty())
    if prompt is not None:
        try:
            _answer(client, conversation, prompt, max_tokens, view)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        return
    _interactive(client, conversation, names, max_tokens, view)


def _default_model(names: list[str]) -> str:
    if "demo" in names:
        return "demo"
    if names:
        return names[0]
    raise MlxgwError("the gateway maps no model by name: build the demo with `mlxgw models demo`, or pass --model")


def _answer(client, conversation, question: str, max_tokens: int | None, view: _View) -> None:
    reply = client.chat(conversation.model, conversation.request(question), max_tokens=max_tokens)
    with reply:
        view.show(reply)
    conversation.answered(reply.text)
    view.info(reply.stats)


def _interactive(client, conversation, names: list[str], max_tokens: int | None, view: _View) -> None:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - arrow keys and history for input()
    err_console.print(
        f"[dim]chatting with [bold]{escape(conversation.model)}[/] at {escape(client.url)}; /help for commands, Ctrl-D to leave[/]",
        highlight=False,
    )
    while True:
        try:
            line = input(f"{conversation.model}> ").strip()
        except EOFError:
            console.print()
            return
        except KeyboardInterrupt:
            console.print()
            continue
        if not line:
            continue
        if line.startswith("/"):
            question = _command(line, conversation, names)
            if question is _EXIT:
                return
            if question is None:
                continue
        else:
            question = line
        try:
            _answer(client, conversation, question, max_tokens, view)
        except KeyboardInterrupt:
            err_console.print("[dim]cancelled[/]")
        except MlxgwError as exc:
            err_console.print(f"[bold red]error:[/] {escape(printable(str(exc)))}", highlight=False, soft_wrap=True)


_EXIT = object()


def _command(line: str, conversation, names: list[str]):
    """Run a slash command; return a question to ask, None, or _EXIT."""
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    if name in ("/exit", "/quit"):
        return _EXIT
    if name == "/model":
        if not arg:
            err_console.print(f"talking to {conversation.model}; mapped names: {', '.join(names) or 'none'}", markup=False, highlight=False)
        else:
            conversation.model = arg
            note = "" if arg in names else " [dim](not a mapped name: a pattern may still route it)[/]"
            err_console.print(f"now talking to [bold]{escape(arg)}[/]{note}", highlight=False)
    elif name == "/system":
        conversation.system = arg or None
        err_console.print("system prompt set" if arg else "system prompt cleared")
    elif name == "/clear":
        conversation.clear()
        err_console.print("conversation cleared")
    elif name == "/retry":
        question = conversation.retry()
        if question is None:
            err_console.print("nothing to retry yet")
        return question
    elif name == "/save":
        if not arg:
            err_console.print("usage: /save FILE")
        else:
            path = Path(arg).expanduser()
            path.write_text(json.dumps(conversation.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            err_console.print(f"saved to {path}", markup=False, highlight=False)
    else:
        err_console.print(COMMANDS, highlight=False, markup=False)
    return None


class _View:
    """How answers appear: in a terminal, a spinner until the first token, the text as it streams,
    then the whole answer as Markdown; otherwise plain text as it comes."""

    def __init__(self, backend_info: bool, *, rich: bool) -> None:
        self.backend_info = backend_info
        self.rich = rich

    def show(self, reply) -> None:
        if not self.rich:
            for piece in reply:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            sys.stdout.flush()
            return
        from rich.live import Live
        from rich.markdown import Markdown

        pieces = iter(reply)
        text = ""
        with _CtrlC() as ctrl_c:
            try:
                with console.status("[dim]waiting for the first token…[/]"), ctrl_c.reading():
                    text = next(pieces, None) or ""
                with Live(_Tail(text), console=console, transient=True, refresh_per_second=15) as live:
                    while True:
                        with ctrl_c.reading():
                            piece = next(pieces, None)
                        if piece is None:
                            break
                        text += piece
                        live.update(_Tail(text))
            except KeyboardInterrupt:
                console.print(_Tail(text, all_lines=True), style="dim")
                raise
        console.print(Markdown(text))

    def info(self, stats) -> None:
        if not self.backend_info:
            return
        parts = [stats.backend or "backend unknown"]
        if stats.output_tokens is not None:
            parts.append(f"{stats.input_tokens or 0} → {stats.output_tokens} tokens")
        if stats.tokens_per_s is not None:
            parts.append(f"{stats.tokens_per_s:.1f} tok/s")
        if stats.first_token_s is not None:
            parts.append(f"first token {stats.first_token_s * 1000:.0f} ms")
        # On stderr when stdout is a pipe: a script reads only the answer.
        (console if self.rich else err_console).print(Text(" · ".join(parts), style="dim"), highlight=False)


class _CtrlC:
    """Ctrl-C cancels a reply, but raises only while the reply is being read: landing inside a live
    display's start or stop, it would leave the display's refresh thread running and stdout captured.
    Elsewhere it waits for the next read."""

    def __enter__(self) -> _CtrlC:
        self.pending = False
        self.armed = False
        self.previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def _on_sigint(self, signum, frame) -> None:
        if self.armed:
            raise KeyboardInterrupt
        self.pending = True

    @contextlib.contextmanager
    def reading(self):
        if self.pending:
            raise KeyboardInterrupt
        self.armed = True
        try:
            yield
        finally:
            self.armed = False


class _Tail:
    """The end of a growing answer, at most a screen high: a live view cannot redraw lines that have
    scrolled out of sight."""

    def __init__(self, text: str, *, all_lines: bool = False) -> None:
        self.text = text
        self.all_lines = all_lines

    def __rich_console__(self, console, options):
        from rich.segment import Segment

        lines = console.render_lines(Text(self.text), options.update(height=None), pad=False)
        if not self.all_lines:
            lines = lines[-max(1, console.height - 2):]
        for i, line in enumerate(lines):
            if i:
                yield Segment.line()
            yield from line
