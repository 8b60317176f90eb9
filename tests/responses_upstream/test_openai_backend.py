"""`responses` on an openai backend: true by default for api.openai.com only; with it, Chat
Completions and Anthropic clients still go to /chat/completions; a non-openai backend refuses it."""

from __future__ import annotations

import anthropic
import openai
import pytest

from fakes.upstream import FakeResponses, Reply
from mlxgw import config, paths
from mlxgw.errors import ConfigError
from tests.foundation.helpers import cli
from tests.gateway.helpers import ask_anthropic, ask_openai, start_gateway


def _settings(tables: str):
    path = paths.config_path()
    cli("config", "path")
    config.ensure_config(path)
    path.write_text(path.read_text() + tables)
    return config.load(path)


def test_responses_is_on_by_default_for_openai_itself_only():
    settings = _settings(
        '\n[backends.openai]\ntype = "openai"\n'
        '\n[backends.groq]\ntype = "openai"\nbase_url = "https://api.groq.com/openai/v1"\n'
        '\n[backends.vllm]\ntype = "openai"\nbase_url = "http://127.0.0.1:8000/v1"\nresponses = true\n'
        '\n[backends.off]\ntype = "openai"\nresponses = false\n'
        '\n[backends.rs]\ntype = "responses"\n'
    )
    assert {name: b.responses for name, b in settings.backends.items()} == {
        "openai": True, "groq": False, "vllm": True, "off": False, "rs": False,
    }
    assert settings.backends["rs"].base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ('type = "anthropic"\nresponses = true', "applies to openai backends only"),
        ('type = "responses"\nresponses = false', "applies to openai backends only"),
        ('type = "openai"\nresponses = "yes"', "must be true or false"),
    ],
)
def test_a_wrong_responses_setting_is_a_one_line_error_at_its_line(table, needle):
    with pytest.raises(ConfigError) as err:
        _settings(f"\n[backends.x]\n{table}\n")
    assert needle in str(err.value)
    assert f"config.toml:{paths.config_path().read_text().splitlines().index(table.splitlines()[1]) + 1}" in str(err.value)


async def test_other_clients_of_a_backend_that_speaks_both_still_use_chat_completions():
    async with FakeResponses(Reply(text="via chat"), Reply(text="via chat too"), chat=True) as up:
        cli("creds", "set", "oa", "--type", "openai", "--base-url", up.url, input="sk-test-both\n")
        path = paths.config_path()
        path.write_text(path.read_text().replace(f'base_url = "{up.url}"', f'base_url = "{up.url}"\nresponses = true'))
        cli("map", "add", "gpt-*", "oa")
        server, url = await start_gateway()
        try:
            async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as oai:
                ans = await ask_openai(oai, stream=True, model="gpt-5", messages=[{"role": "user", "content": "hi"}], seed=3)
            async with anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0) as anth:
                other = await ask_anthropic(anth, stream=False, model="gpt-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
        finally:
            await server.close()
    assert (ans.text, other.text) == ("via chat", "via chat too")
    assert [r.path for r in up.requests] == ["/v1/chat/completions", "/v1/chat/completions"]
    assert up.requests[0].json["seed"] == 3  # the Chat Completions client passed through
