"""`mlxgw ui`, run as a user runs it (a subprocess): it opens the running daemon's dashboard in the
browser that $BROWSER names, prints the address when no browser can be opened, and starts nothing."""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp
import pytest

from fakes.upstream import FakeOpenAI
from mlxgw import paths
from tests.failover.rig import gateway_for
from tests.gateway.helpers import get

BROWSER_SCRIPT = """#!/bin/sh
echo "$1" > "{out}"
"""


async def _ui(*args: str, browser: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["BROWSER"] = browser
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlxgw", "ui", *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, " ".join(out.decode().split())  # rich may wrap a long line


def _point_config_at(url: str) -> str:
    port = url.rsplit(":", 1)[1]
    config = paths.config_path()
    config.write_text(config.read_text().replace("port = 8421", f"port = {port}", 1))
    return f"http://127.0.0.1:{port}/ui"


async def test_ui_opens_the_dashboard_or_prints_its_address(tmp_path):
    opened = tmp_path / "opened.txt"
    script = tmp_path / "fake-browser"
    script.write_text(BROWSER_SCRIPT.format(out=opened))
    script.chmod(0o755)
    async with FakeOpenAI() as up, gateway_for({"oa": ("openai", up.url, {})}, []) as url:
        dashboard = _point_config_at(url)
        code, out = await _ui(browser=str(script))
        assert code == 0 and f"opened {dashboard} in your browser" in out
        for _ in range(100):  # the browser command runs in the background
            if opened.exists() and opened.read_text().strip():
                break
            await asyncio.sleep(0.05)
        assert opened.read_text().strip() == dashboard

        opened.unlink()
        code, out = await _ui(browser=str(tmp_path / "no-such-browser"))
        assert code == 0 and f"no browser could be opened here: open {dashboard}" in out

        code, out = await _ui("--print", browser=str(script))
        assert code == 0 and out == dashboard
        assert not opened.exists()


async def test_ui_starts_no_daemon(tmp_path):
    async with FakeOpenAI() as up, gateway_for({"oa": ("openai", up.url, {})}, []) as url:
        dashboard = _point_config_at(url)
    code, out = await _ui(browser=str(tmp_path / "no-such-browser"))
    assert code == 1
    assert "no mlxgw daemon is answering at" in out and "mlxgw start" in out and dashboard in out
    with pytest.raises(aiohttp.ClientConnectionError):  # and nothing was started there
        await get(dashboard, timeout=2)
