"""What agents put at the head of their prompts that changes from session to session and means
nothing to the model, taken out before a request goes to a model that is not Anthropic's (the local
worker, Chat Completions and Responses upstreams), so that the shared head stays cacheable there.
Passthrough to Anthropic relays the client's own body and never comes here.

The rule:

- **Claude Code's billing block.** Its first system block is the single line
  `x-anthropic-billing-header: cc_version=2.1.332.0b8; cc_entrypoint=sdk-cli;`, and the suffix after
  the version is derived from the conversation's first message (`.0b8` for "say hi", `.bd3` for
  "hello there"), so every new session and sub-agent began with different tokens and missed a
  prefix cache over the ~20k tokens of system prompt and tools they share. It is Anthropic's
  billing metadata, not an instruction. Only a system text block that is exactly such a header line
  (`name=value;` pairs, trailing whitespace allowed) is dropped; text that mentions it is kept.

Left alone, from comparing real first requests of Claude Code 2.1.332 and Codex 0.169.0 in fresh
sessions (tests/agents/fixtures/README.md):

- Claude Code's memory-folder path (in its main system prompt) and its `# Environment` system
  message (working directory, "Is a git repository", platform, `Today's date is …`) differ only
  from project to project and day to day; sessions and sub-agents of one project on one day send
  them identically, and the model needs each of them. That system message comes after the first
  user turn and stays there (see `mlxgw.canonical.Message`), after the shared system prompt and
  tools, so a session in another project or on another day still reads those from the cache.
- Claude Code's git status, Codex's `<environment_context>` (cwd, date, timezone) and the user's own
  words come in the first user turn, after the shared head; session ids travel only in
  `metadata.user_id`, `prompt_cache_key` and headers, which never reach a model's prompt.
"""

from __future__ import annotations

import re
from dataclasses import replace

from mlxgw.canonical import ChatRequest

_BILLING_HEADER = re.compile(r"x-anthropic-billing-header:(?: [a-z_]+=[^;\s]*;)+\s*")


def steady(request: ChatRequest) -> ChatRequest:
    """`request` without the per-session parts of its head that no model but Anthropic's needs."""
    system = [part for part in request.system if _BILLING_HEADER.fullmatch(part.text) is None]
    if len(system) == len(request.system):
        return request
    return replace(request, system=system)
