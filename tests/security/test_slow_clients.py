"""Clients that hold connections open by sending slowly (slowloris), against `mlxgw serve` in a
process of its own, with raw sockets: a half-sent head and a trickling body are cut off in bounded
time, and a well-behaved client is unaffected."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from tests.reliability.daemon import daemon

HEAD_S = 0.5
BODY_S = 0.5
SLOW = {"server": {"header_timeout_s": HEAD_S, "body_timeout_s": BODY_S}}
# Far longer than the bounds above, far shorter than aiohttp's own keep-alive default (an hour).
CUT_OFF_WITHIN_S = 10.0


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await reader.read()


async def test_half_sent_request_heads_are_all_closed_within_the_bound(tmp_path: Path):
    async with daemon(tmp_path, **SLOW) as gw:
        host, port = _address(gw.url)
        partial = [b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty", b"GET /health HTTP/1.1\r\n", b""]
        connections = []
        for i in range(50):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(partial[i % len(partial)])  # a third send nothing at all
            await writer.drain()
            connections.append((reader, writer))
        try:
            async with asyncio.timeout(CUT_OFF_WITHIN_S):
                leftovers = await asyncio.gather(*(_closed_by_server(r) for r, _ in connections))
        finally:
            for _, writer in connections:
                writer.close()
        assert all(data == b"" for data in leftovers), "a half-sent head gets no answer, only a close"
        # The daemon is fine and answers the next caller.
        async with aiohttp.ClientSession() as session, session.get(gw.url + "/health") as r:
            assert r.status == 200


async def test_a_trickling_body_gets_408_within_the_bound(tmp_path: Path):
    async with daemon(tmp_path, **SLOW) as gw:
        host, port = _address(gw.url)
        for path, shape in [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")]:
            reader, writer = await asyncio.open_connection(host, port)
            head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
                    "anthropic-version: 2023-06-01\r\ncontent-length: 100000\r\n\r\n")
            writer.write(head.encode() + b'{"model": "m", ')

            async def trickle(writer=writer):
                while True:
                    await asyncio.sleep(0.05)
                    writer.write(b" ")
                    await writer.drain()

            dripping = asyncio.create_task(trickle())
            try:
                async with asyncio.timeout(CUT_OFF_WITHIN_S):
                    status_line = await reader.readline()
                    headers = {}
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        name, _, value = line.decode().partition(":")
                        headers[name.strip().lower()] = value.strip()
                    body = json.loads(await reader.readexactly(int(headers["content-length"])))
            finally:
                dripping.cancel()
                await asyncio.gather(dripping, return_exceptions=True)
                writer.close()
            assert status_line.startswith(b"HTTP/1.1 408"), status_line
            error = body["error"]
            assert "body_timeout_s" in error["message"]
            if shape == "anthropic":
                assert body["type"] == "error" and error["type"] == "timeout_error"
            else:
                assert set(error) == {"message", "type", "param", "code"}


async def test_a_client_that_keeps_sending_promptly_is_served(tmp_path: Path):
    config = {**SLOW, "backends": {}, "mappings": []}
    async with daemon(tmp_path, **config) as gw, aiohttp.ClientSession() as session:
        # Several requests on one kept-alive connection, each promptly after the last answer.
        for _ in range(5):
            async with session.get(gw.url + "/health") as r:
                assert r.status == 200
            await asyncio.sleep(HEAD_S / 5)
