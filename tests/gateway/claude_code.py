"""A request shaped like the one current Claude Code sends, and the headers it sends with it."""

from __future__ import annotations

TOOL_NAMES = [
    "Task", "Bash", "Glob", "Grep", "LS", "Read", "Edit", "MultiEdit", "Write", "WebFetch", "TodoWrite", "WebSearch",
]  # fmt: skip


ANTHROPIC_ONLY = {
    "thinking",
    "context_management",
    "output_config",
    "metadata",
    "cache_control",
    "anthropic_beta",
}


def claude_code_request(model: str) -> dict:
    tools = [
        {
            "name": name,
            "description": f"The {name} tool.",
            "input_schema": {
                "type": "object",
                "properties": {"arg": {"type": "string", "description": "an argument"}},
                "required": ["arg"],
                "additionalProperties": False,
                "$schema": "http://json-schema.org/draft-07/schema#",
            },
        }
        for name in TOOL_NAMES
    ]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    return {
        "model": model,
        "max_tokens": 128000,
        "stream": True,
        "system": [
            {
                "type": "text",
                "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                "cache_control": {"type": "ephemeral"},
            },
            {
                "type": "text",
                "text": "Working directory: /work/project",
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>context</system-reminder>"},
                    {"type": "text", "text": "List the files.", "cache_control": {"type": "ephemeral"}},
                ],
            },
            {"role": "system", "content": "The user switched to plan mode."},
        ],
        "tools": tools,
        "metadata": {"user_id": "user_0f3a_account_1b2c_session_9d8e"},
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "temperature": 1,
    }


HEADERS = {
    "x-api-key": "client-key",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27",
    "anthropic-dangerous-direct-browser-access": "true",
    "x-app": "cli",
    "user-agent": "claude-cli/2.1.328 (external, cli)",
}
