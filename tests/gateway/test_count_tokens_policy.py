"""`/v1/messages/count_tokens` follows the dispatcher's policy, like `/v1/messages`: an upstream that
refuses mlxgw's credentials is the gateway's problem (a 502 naming the backend), never the client's
own authentication error, and the next backend of the chain counts instead."""

from __future__ import annotations

import anthropic
import pytest

from fakes.upstream import FakeAnthropic, Reply, Usage
from tests.failover.rig import gateway_for

MESSAGES = [{"role": "user", "content": "count me"}]


def client(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="client-key", max_retries=0, timeout=10)


@pytest.mark.parametrize("status", [401, 403])
async def test_an_upstream_refusing_our_key_is_a_502_naming_the_backend(status):
    async with FakeAnthropic() as refusing:
        async with gateway_for({"an": ("anthropic", refusing.url, {})}, [{"pattern": "claude-*", "backend": "an"}]) as url:
            sdk = client(url)
            refusing.push(Reply(status=status), endpoint="count_tokens")
            with pytest.raises(anthropic.APIStatusError) as counted:
                await sdk.messages.count_tokens(model="claude-x", messages=MESSAGES)
            refusing.push(Reply(status=status))
            with pytest.raises(anthropic.APIStatusError) as answered:
                await sdk.messages.create(model="claude-x", max_tokens=16, messages=MESSAGES)
            await sdk.close()
    # The two endpoints agree: the same status, the same kind of error, the same advice.
    assert counted.value.status_code == answered.value.status_code == 502
    assert counted.value.body["error"]["type"] == answered.value.body["error"]["type"] == "api_error"
    message = counted.value.body["error"]["message"]
    assert "backend an" in message and "mlxgw creds set an" in message
    assert counted.value.response.headers["x-should-retry"] == "false"


async def test_the_next_backend_counts_when_the_first_refuses_our_key():
    async with FakeAnthropic() as refusing, FakeAnthropic() as second:
        backends = {"an": ("anthropic", refusing.url, {}), "an2": ("anthropic", second.url, {})}
        async with gateway_for(backends, [{"pattern": "claude-*", "backend": "an", "fallbacks": ["an2"]}]) as url:
            refusing.push(Reply(status=401), endpoint="count_tokens")
            second.push(Reply(usage=Usage(input_tokens=42)), endpoint="count_tokens")
            sdk = client(url)
            counted = await sdk.messages.count_tokens(model="claude-x", messages=MESSAGES)
            await sdk.close()
    assert counted.input_tokens == 42
    assert [r.path for r in refusing.requests] == ["/v1/messages/count_tokens"]
    assert second.requests[0].json["model"] == "claude-x"
