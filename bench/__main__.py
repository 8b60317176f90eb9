"""`python -m bench SUBCOMMAND` (or `scripts/bench SUBCOMMAND`)."""

from __future__ import annotations

import argparse
import asyncio
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description="Benchmarks for mlxgw; results in bench-results/.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("overhead", help="latency and throughput added in front of an instant fake upstream")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per measured cell (default 4)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 32], help="client counts (default 1 32)")
    p.add_argument("--profile", action="store_true", help="run the gateway under cProfile and print its hot spots")

    p = sub.add_parser("local", help="the demo model in-process, via mlx_lm.server and via mlxgw")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--runs", type=int, default=3, help="single-stream runs (median reported)")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2, help="rounds of `clients` concurrent requests")

    p = sub.add_parser("failover", help="time from a local failure to the fallback's first byte")
    p.add_argument("--trials", type=int, default=10)

    p = sub.add_parser("load", help="many concurrent streams through mlxgw for a while; peak daemon memory")
    p.add_argument("--connections", type=int, default=500)
    p.add_argument("--duration", type=float, default=30.0)

    p = sub.add_parser("agent", help="recorded Claude Code and Codex sessions on the demo model: mlxgw vs mlx_lm.server")
    p.add_argument("--agent", choices=["claude", "codex", "all"], default="all")
    p.add_argument("--turns", type=int, default=None, help="replay only the first N recorded turns (default all)")
    p.add_argument("--again", type=int, default=2, help="turns replayed after the restart (default 2)")
    p.add_argument("--max-tokens", type=int, default=32, help="output limit of every turn (default 32)")
    p.add_argument("--runs", type=int, default=3, help="replays of each session, fresh servers each (median reported)")

    args = parser.parse_args(argv)
    if args.command == "overhead":
        from bench import overhead as mod
    elif args.command == "local":
        from bench import local as mod
    elif args.command == "agent":
        from bench import agent as mod
    elif args.command == "failover":
        from bench import failover as mod
    else:
        from bench import load as mod
    asyncio.run(mod.main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
