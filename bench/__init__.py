"""mlxgw's benchmarks: `scripts/bench overhead | local | failover | load`.

Every party runs in its own process — the fake upstream, the gateway (`mlxgw serve`), mlx_lm.server
— and the load comes from this one, an aiohttp client. Results print as a table and are written as
JSON under bench-results/, with the machine they ran on.
"""
