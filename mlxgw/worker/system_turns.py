"""System messages in the middle of a conversation, for chat templates that cannot take them.

The daemon sends a system message the client put after the conversation began in place (see
`mlxgw.canonical.Message`). Many templates render one there (Qwen2.5/3, Llama 3, LFM2, the demo's);
others raise (Gemma's "roles must alternate", templates that want the system turn at index 0 only)
or silently drop it. Which kind a model has is learnt once per chat template, by rendering a probe
conversation whose late system message carries a marker: a template that raises or loses the marker
gets each such message as a user turn instead, its text wrapped in `<system-reminder>` tags (the
wording Claude Code uses for its own notes), joined to the user turn before it or else the one after
it, so that roles still alternate. The rendering stays where the message was, so the prompt's head
is unchanged either way.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("mlxgw.worker")

_MARKER = "mlxgw-probe-7f3a"
_PROBE = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "system", "content": _MARKER},
    {"role": "user", "content": "bye"},
]

_takes_late_system: dict[str, bool] = {}  # chat template text -> whether it renders a late system turn


def fit(tokenizer: Any, messages: list[dict]) -> list[dict]:
    """`messages` as `tokenizer`'s chat template can render them: unchanged when it takes a system
    turn after the first message, else with each such turn rewritten as a user turn in place."""
    if not any(m.get("role") == "system" for m in messages[1:]) or _accepts(tokenizer):
        return messages
    return as_user_turns(messages)


def as_user_turns(messages: list[dict]) -> list[dict]:
    """Every system turn but a leading one as `<system-reminder>` text in a user turn, where it was."""
    out: list[dict] = []
    waiting: list[str] = []  # reminders with no user turn before them, for the next one
    for i, msg in enumerate(messages):
        if msg.get("role") != "system" or i == 0:
            if msg.get("role") == "user" and waiting:
                msg = {**msg, "content": "\n\n".join([*waiting, msg.get("content") or ""])}
                waiting.clear()
            elif waiting:
                out.append({"role": "user", "content": "\n\n".join(waiting)})
                waiting.clear()
            out.append(msg)
            continue
        reminder = f"<system-reminder>\n{msg.get('content') or ''}\n</system-reminder>"
        if out and out[-1].get("role") == "user":
            out[-1] = {**out[-1], "content": f"{out[-1].get('content') or ''}\n\n{reminder}"}
        else:
            waiting.append(reminder)
    if waiting:
        out.append({"role": "user", "content": "\n\n".join(waiting)})
    return out


def _accepts(tokenizer: Any) -> bool:
    template = getattr(tokenizer, "chat_template", None)
    key = template if isinstance(template, str) else repr(template)
    if key not in _takes_late_system:
        try:
            text = tokenizer.apply_chat_template(_PROBE, tokenize=False, add_generation_prompt=True)
            _takes_late_system[key] = _MARKER in text
        except Exception:  # the template's own refusal: exactly what the probe asks about
            _takes_late_system[key] = False
        if not _takes_late_system[key]:
            log.info("this chat template takes no system message after the first turn: such messages "
                     "are rendered as <system-reminder> user text")
    return _takes_late_system[key]
