"""The dashboard in headless Chromium (Debian's, driven by Playwright): it loads with no console
errors, shows the backends and the local model, a new request appears without a reload, the charts
draw bars, and with client keys it asks for one and then shows the requests. A screenshot is kept
under bench-results/ (CI keeps it as an artifact)."""

from __future__ import annotations

import contextlib
import json

import openai
from playwright.async_api import async_playwright

from fakes.upstream import FakeOpenAI, Reply, Usage
from tests.failover.rig import gateway_for
from tests.foundation.helpers import cli
from tests.gateway.helpers import eventually, get
from tests.observability import browser
from tests.observability.helpers import MSG

SCREENSHOTS = browser.ROOT / "bench-results"
WAIT_MS = 10_000
# The first colour of the charts' palette (dashboard.js): a bar of the largest series.
BAR_RGB = (0x1F, 0x6F, 0xEB)

COLOURED_PIXELS = """([id, r, g, b]) => {
  const c = document.getElementById(id), data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] === r && data[i + 1] === g && data[i + 2] === b) n++;
  return n;
}"""


@contextlib.asynccontextmanager
async def _page(chromium, tmp_path):
    """A fresh Chromium profile and one page, collecting its console errors and uncaught exceptions."""
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(chromium), headless=True, args=list(browser.FLAGS),
            viewport={"width": 1280, "height": 1100},
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(WAIT_MS)
            problems: list[str] = []
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
            yield page, problems
        finally:
            await context.close()


async def test_dashboard_live_in_chromium(chromium, demo_dir, tmp_path):
    replies = [Reply(text="hello", usage=Usage(input_tokens=40, output_tokens=12, cache_read_tokens=25)) for _ in range(3)]
    async with FakeOpenAI(*replies) as up:
        mappings = [{"pattern": "gpt-*", "backend": "oa"}, {"pattern": "demo", "backend": "local", "model": str(demo_dir)}]
        async with gateway_for({"oa": ("openai", up.url, {})}, mappings) as url, _page(chromium, tmp_path) as (page, problems):
            oa = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
            await oa.chat.completions.create(model="gpt-4o", messages=MSG)
            await oa.chat.completions.create(model="demo", messages=MSG, max_tokens=4)
            await eventually(lambda: _logged(url, 2))

            await page.goto(url + "/ui")
            await page.wait_for_selector('#backends tr[data-backend="oa"] td.closed')
            await page.wait_for_selector('#backends tr[data-backend="local"]')
            await page.wait_for_selector("#local dd.ok")  # the worker runs the demo model
            assert str(demo_dir) in await page.inner_text("#local-models")
            await page.wait_for_function("document.querySelectorAll('#requests tbody tr').length === 2")
            # A bar of the requests chart, in the largest series' colour.
            await page.wait_for_function(f"({COLOURED_PIXELS})(['chart-requests', {', '.join(map(str, BAR_RGB))}]) > 0")
            assert await page.evaluate(COLOURED_PIXELS, ["chart-tokens", *BAR_RGB]) > 0
            await page.evaluate("window.loadedOnce = true")

            await oa.chat.completions.create(model="gpt-4o-live", messages=MSG)
            row = await page.wait_for_selector('#requests tbody tr:first-child:has-text("gpt-4o-live")')
            assert "oa:gpt-4o-live" in await row.inner_text()
            assert await (await row.query_selector("td.cached")).inner_text() == "25"  # what the upstream read from its cache
            assert await page.evaluate("window.loadedOnce") is True  # the same page: it was not reloaded
            await oa.close()
            SCREENSHOTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
            assert problems == []


async def test_dashboard_asks_for_a_client_key_and_keeps_it_for_the_tab(chromium, tmp_path):
    async with FakeOpenAI() as up, gateway_for({"oa": ("openai", up.url, {})}, [{"pattern": "gpt-*", "backend": "oa"}]) as url:
        key = json.loads(cli("keys", "create", "viewer", "--json").output)["key"]

        async def enforced():
            return (await get(url + "/mlxgw/requests")).status == 401

        await eventually(enforced)
        oa = openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        await oa.chat.completions.create(model="gpt-keyed", messages=MSG)
        await oa.close()
        async with _page(chromium, tmp_path) as (page, problems):
            await page.goto(url + "/ui")
            await page.wait_for_selector("#key-form:not([hidden])")
            await page.fill("#key-input", "not-the-key")
            await page.click("#key-form button")
            await page.wait_for_selector('#key-error:has-text("refused")')
            await page.fill("#key-input", key)
            await page.click("#key-form button")
            await page.wait_for_selector('#requests td:has-text("gpt-keyed")')
            assert await page.evaluate("sessionStorage.getItem('mlxgw.key')") == key
            # Only the refusals the page was waiting for reached the console.
            assert problems and all("401" in p for p in problems), problems


async def _logged(url: str, n: int) -> bool:
    return len((await get(url + "/mlxgw/requests")).json["requests"]) >= n
