"""An aiohttp application on a socket of its own, started and stopped as an async context manager: the
demo news site and the benchmark's site share this life cycle."""

from __future__ import annotations

import socket
from typing import Any, Self

from aiohttp import web


class LoopbackSite:
    """Subclasses build their application in `start` and hand it to `_serve`."""

    host: str
    _runner: web.AppRunner | None = None

    async def _serve(self, app: web.Application, port: int = 0, *, backlog: int = 128, **runner: Any) -> int:
        """Listen on `host:port` (0: a free port) and serve `app`; the port it listens on. The socket is
        bound here, not by aiohttp, so that the port is known (and taken) before the site starts."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            raise
        self._runner = web.AppRunner(app, handle_signals=False, **runner)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, backlog=backlog).start()
        return sock.getsockname()[1]

    async def start(self) -> Self:
        raise NotImplementedError

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
