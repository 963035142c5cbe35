"""An aiohttp application served on an event loop of its own, on a thread of its own.

The worker's SQL interface and control socket answer while the Faust loop is busy storing a batch
(the Deriver's work holds that loop), and a slow client never delays ingestion."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web


class LoopThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []

    def start(self, *sites: Callable[[], Awaitable[web.AppRunner]]) -> None:
        """Run the loop and set up each site; returns once all listen (a bind error is raised here)."""
        started = threading.Event()
        failure: list[BaseException] = []

        async def listen() -> None:
            for site in sites:
                self._runners.append(await site())

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(listen())
            except BaseException as exc:
                failure.append(exc)
                loop.run_until_complete(self._cleanup())
                loop.close()
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]

    async def _cleanup(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners = []

    def stop(self) -> None:
        loop, thread = self.loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
