"""Keep-alives for streamed answers, so that clients with read timeouts do not give up while nothing
flows: a long prefill, a slow upstream, a pause between chunks.

Before the answer has started, the dispatcher may still fail over, so nothing is sent at first and
a request that fails quickly gets its real HTTP status. Once the wait passes the keep-alive interval,
the response is committed: a 200 with SSE headers and the renderer's keep-alive (a comment line for
Chat Completions and Anthropic clients, which their SDKs skip; `response.in_progress` for Responses
clients, as Codex counts only events) every interval while the dispatcher walks the chain; a failure after that becomes the
protocol's error event. Once the answer flows, the renderer's ping fills each interval of silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from mlxgw.dispatch.dispatcher import Opened
from mlxgw.server.middleware import ANSWER_STARTED


class KeepAlive:
    """One streamed answer's keep-alives; `interval` 0 turns them off."""

    def __init__(self, request: web.Request, interval: float, ping: Callable[[], bytes], headers: dict[str, str]) -> None:
        self.request = request
        self.interval = interval
        self.ping = ping
        self.headers = headers  # those of a response committed before the answer started
        self.response: web.StreamResponse | None = None
        self._loop = asyncio.get_running_loop()
        self._last = 0.0
        self._beating: asyncio.Task | None = None
        self._writing = False
        self._stopped = False

    async def wait(self, opening: Awaitable[Opened]) -> Opened:
        """Await the dispatcher's `opening`, committing the response and sending keep-alives while
        it takes longer than the interval. A client that goes away stops the walk down the chain."""
        if not self.interval:
            return await opening
        task = asyncio.ensure_future(opening)
        try:
            while not (await asyncio.wait((task,), timeout=self.interval))[0]:
                await self._commit({})
                await self.response.write(self.ping())
            return task.result()
        except BaseException:
            task.cancel()
            result = (await asyncio.gather(task, return_exceptions=True))[0]
            if isinstance(result, Opened):  # it opened just as we gave up on it
                await result.aclose()
            raise

    async def start(self, headers: dict[str, str]) -> web.StreamResponse:
        """The answer's response, with `headers` unless the keep-alives committed it already; from
        now on the renderer's ping fills each silent interval."""
        await self._commit(headers)
        self.wrote()
        if self.interval:
            self._beating = asyncio.create_task(self._beat())
        return self.response

    def wrote(self) -> None:
        """The answer itself just wrote: the next keep-alive is due an interval from now."""
        self._last = self._loop.time()

    def stop(self) -> None:
        """Before the response ends: no keep-alive may follow its last chunk."""
        self._stopped = True
        # A ping being written is let finish: cancelling it would cancel the drain it may share
        # with the answer's own write.
        if self._beating is not None and not self._writing:
            self._beating.cancel()

    async def _commit(self, headers: dict[str, str]) -> None:
        if self.response is None:
            self.response = web.StreamResponse(status=200, headers={**self.headers, **headers})
            await self.response.prepare(self.request)
            self.request[ANSWER_STARTED] = self.response

    async def _beat(self) -> None:
        assert self.response is not None
        while True:
            await asyncio.sleep(self._last + self.interval - self._loop.time())
            if self._stopped:
                return
            if self._loop.time() - self._last < self.interval:
                continue
            self._writing = True
            try:
                await self.response.write(self.ping())
            except ConnectionError:
                return  # the client went away; its handler is cancelled with it
            finally:
                self._writing = False
            self.wrote()
