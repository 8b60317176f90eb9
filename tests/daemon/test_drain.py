"""`mlxgw stop` is graceful: the daemon stops accepting at once, lets a running stream finish with
its final frame, then exits; past the timeout, what is still running is cut off and it exits anyway."""

from __future__ import annotations

import socket
import subprocess
import time

import openai
import pytest

from fakes.upstream import Reply
from mlxgw.daemon.lock import holder
from tests.daemon.helpers import MLXGW, alive, upstream_in_thread, wait_until
from tests.foundation.helpers import cli

CHUNKS = ["one ", "two ", "three ", "four ", "five"]


def _map_slow_upstream(url: str) -> None:
    cli("creds", "set", "slow", "--type", "openai", "--base-url", url, "--no-key")
    cli("map", "add", "slow-*", "slow")


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_stop_lets_a_running_stream_finish(daemons, port):
    with upstream_in_thread(Reply(text=CHUNKS, chunk_delay_s=0.3)) as up:
        _map_slow_upstream(up.url)
        info = daemons.start()
        client = openai.OpenAI(base_url=info.url + "/v1", api_key="unused", max_retries=0, timeout=30)
        stream = client.chat.completions.create(
            model="slow-1", messages=[{"role": "user", "content": "count"}], stream=True
        )
        chunks = iter(stream)
        received = [next(chunks)]  # the stream is under way

        stopper = subprocess.Popen([*MLXGW, "stop", "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: _refused(port), timeout=5, what="the daemon to stop accepting")
            with pytest.raises(openai.APIConnectionError):
                client.models.list()
            assert stopper.poll() is None  # still draining
            received += list(chunks)
            out, err = stopper.communicate(timeout=30)
        finally:
            if stopper.poll() is None:
                stopper.kill()
                stopper.wait()

    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert text == "".join(CHUNKS)
    assert [c.choices[0].finish_reason for c in received if c.choices][-1] == "stop"
    assert stopper.returncode == 0, err
    assert f"(pid {info.pid}) stopped (" in out
    assert holder() is None
    wait_until(lambda: not alive(info.pid), timeout=5, what="the daemon to exit")


def test_stop_cuts_off_what_outlives_the_timeout(daemons):
    with upstream_in_thread(Reply(text=["tick "] * 40, chunk_delay_s=0.5)) as up:
        _map_slow_upstream(up.url)
        info = daemons.start()
        client = openai.OpenAI(base_url=info.url + "/v1", api_key="unused", max_retries=0, timeout=30)
        stream = client.chat.completions.create(
            model="slow-1", messages=[{"role": "user", "content": "tick"}], stream=True
        )
        chunks = iter(stream)
        next(chunks)
        began = time.monotonic()
        stopped = subprocess.run([*MLXGW, "stop", "--timeout", "1"], capture_output=True, text=True, timeout=30)
        took = time.monotonic() - began
        with pytest.raises(openai.APIError):
            for _ in chunks:
                pass
        wait_until(lambda: up.requests and up.requests[0].disconnected, timeout=5, what="the upstream to be cancelled")

    assert stopped.returncode == 0, stopped.stderr
    assert "were cut off" in stopped.stdout
    assert took < 10
    assert holder() is None
    wait_until(lambda: not alive(info.pid), timeout=5, what="the daemon to exit")
