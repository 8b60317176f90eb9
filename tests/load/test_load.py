"""500 concurrent streaming connections through `mlxgw serve` to a fake upstream for 30 s, with no
error (also `scripts/bench load`). About 35 s: it runs in CI."""

from __future__ import annotations

import pytest

from bench import load


@pytest.mark.timeout(300)
async def test_500_concurrent_streams_for_30_s():
    result = await load.run(connections=500, duration_s=30.0)
    print(f"\n{result['requests']} requests, {result['rps']:.0f}/s, daemon peak RSS {result['daemon_rss_peak_mb']:.0f} MB")
    assert result["errors"] == 0, result["error_kinds"]
    assert result["requests"] >= 500
