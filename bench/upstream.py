"""Fake OpenAI and Anthropic upstreams that answer at once, in a process of their own.

`python -m bench.upstream --ready-file F` serves until SIGTERM; once listening it writes
{"openai": base_url, "anthropic": base_url} to F. The fakes are the ones the test suite uses (the
`fakes` package at the repository's root), told not to keep a record of each request: a benchmark
sends a lot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from fakes.upstream import FakeAnthropic, FakeOpenAI


def _forgetful(cls):
    class Forgetful(cls):
        async def _record(self, request):
            rec = await super()._record(request)
            self.requests.clear()
            return rec

    return Forgetful


async def main(args: argparse.Namespace) -> None:
    text = " ".join(f"word{i}" for i in range(args.words))
    fakes = []
    for cls in (FakeOpenAI, FakeAnthropic):
        fake = _forgetful(cls)(chunk_delay_s=args.chunk_delay_s)
        fake.default_text = text
        await fake.start()
        fakes.append(fake)
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"openai": fakes[0].url, "anthropic": fakes[1].url}, f)
    os.replace(tmp, args.ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for fake in fakes:
        await fake.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--words", type=int, default=20)
    parser.add_argument("--chunk-delay-s", type=float, default=0.0)
    asyncio.run(main(parser.parse_args()))
