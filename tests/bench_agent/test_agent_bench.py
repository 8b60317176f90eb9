"""`scripts/bench agent` at its smallest: Codex's recorded session, two turns and a restart, through
`mlxgw serve` on the demo model and through mlx_lm.server (about 40 s, so it runs in CI); and the
recorded sessions it replays."""

from __future__ import annotations

import pytest

from bench import agent


@pytest.mark.parametrize("name", sorted(agent.AGENTS.values()))
def test_recorded_session_has_six_turns_after_tool_calls(name):
    session = agent.load_session(name)
    requests = session["requests"]
    assert len(requests) >= 7
    for before, after in zip(requests, requests[1:], strict=False):
        history = after["body"].get("messages") or after["body"].get("input")
        # Each turn resends the conversation so far (Claude Code moves its cache_control marks) and the
        # results of every tool call made in it.
        assert len(history) > len(before["body"].get("messages") or before["body"].get("input"))
        results = [part for item in history if isinstance(item, dict)
                   for part in [item, *(item.get("content") if isinstance(item.get("content"), list) else [])]
                   if isinstance(part, dict) and part.get("type") in ("tool_result", "function_call_output")]
        assert len(results) >= requests.index(after)


@pytest.mark.timeout(300)
async def test_codex_session_replayed_through_mlxgw_and_mlx_lm_server(capsys):
    result = await agent.run(["codex"], turns=2, again=1, max_tokens=4, runs=1)

    median = result["results"]["codex"]["median"]
    ours, theirs = median["mlxgw"], median["mlx_lm_server"]
    first, second = ours["turns"]
    assert first["prompt_tokens"] > 5000  # Codex's real instructions and tools, on the local model
    assert second["prompt_tokens"] > first["prompt_tokens"]
    assert second["prefilled_tokens"] <= 0.05 * second["prompt_tokens"]
    (restarted,) = ours["after_restart"]
    assert restarted["prompt_tokens"] == first["prompt_tokens"]
    assert restarted["prefilled_tokens"] <= 0.05 * restarted["prompt_tokens"]  # from the disk cache
    # mlx_lm.server got the same prompt, translated, and keeps nothing across its restart.
    for a, b in zip(ours["turns"], theirs["turns"], strict=True):
        assert abs(a["prompt_tokens"] - b["prompt_tokens"]) <= 0.01 * a["prompt_tokens"]
    assert theirs["after_restart"][0]["cached_tokens"] < 0.05 * first["prompt_tokens"]
    logged = [t["request_log"] for t in result["results"]["codex"]["runs"][0]["mlxgw"]["turns"]]
    assert [row["input_tokens"] for row in logged] and all(row["input_tokens"] for row in logged)
    assert [t["name"] for t in result["targets"]] == [
        "Codex: turns >= 2 prefill (worst turn's share of its prompt)", "Codex: turns >= 2 TTFT vs the first (worst)",
        "Codex: first turn after a restart vs cold", "Codex: turns where mlxgw's TTFT beats mlx_lm.server's"]
    out = capsys.readouterr().out
    assert "Codex's recorded session on the demo model" in out and "targets (reported, not asserted)" in out
