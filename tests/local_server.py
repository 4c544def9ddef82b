"""An aiohttp application served on 127.0.0.1 from a background thread, for fetcher tests."""

import asyncio
import threading

from aiohttp import web


class BackgroundServer:
    """Serve ``app`` on a free port of 127.0.0.1 until :meth:`close`."""

    def __init__(self, app: web.Application, access_log: bool = True) -> None:
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, **({} if access_log else {"access_log": None}))
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", 0).start())
        self.port = self._runner.addresses[0][1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the loop and the thread."""
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
