"""The running daemon only reads the user's config: a plaintext api_key found by a reload is used
(stored encrypted) but left in the file for a command to move out, and finding it again on every
poll is no change (no reload loop)."""

from __future__ import annotations

import asyncio

from fakes.upstream import FakeOpenAI, Reply
from mlxgw import paths
from mlxgw.store.database import generation
from tests.foundation.helpers import cli
from tests.gateway.helpers import eventually, post, start_gateway

HAND_KEY = "sk-test-hand-edited-0003"
CHAT = {"model": "hand-x", "messages": [{"role": "user", "content": "hi"}]}


async def test_a_reload_uses_a_plaintext_key_but_leaves_the_file_alone():
    async with FakeOpenAI(Reply(text="hello"), require_key=HAND_KEY) as up:
        server, url = await start_gateway()
        try:
            path = paths.config_path()
            text = path.read_text() + (
                f'\n[backends.hand]\ntype = "openai"\nbase_url = "{up.url}"\napi_key = "{HAND_KEY}"\n'
                '\n[[mappings]]\npattern = "hand-*"\nbackend = "hand"\n'
            )
            path.write_text(text)

            async def answered():
                return (await post(url + "/v1/chat/completions", CHAT)).status == 200

            await eventually(answered, timeout=10)
            assert up.requests[-1].headers["authorization"] == f"Bearer {HAND_KEY}"
            settled = generation()
            await asyncio.sleep(1.0)  # several polls: the key found again is no change
            assert generation() == settled
            assert path.read_text() == text  # the daemon wrote nothing into the user's file
        finally:
            await server.close()
    # A command moves it out.
    cli("config", "sync")
    assert HAND_KEY not in paths.config_path().read_text()
