"""A TCP proxy that can stall: a server that stops answering without closing anything.

:class:`StallingProxy` forwards bytes both ways between its clients and one real
server. :meth:`StallingProxy.stall` stops the forwarding in both directions: the bytes
already read are held, nothing more is read, every socket stays open (what a broker
that hangs, or a network that drops packets, looks like to a client). Connections made
while it is stalled are accepted and held too. :meth:`StallingProxy.resume` forwards
again, the held bytes first; :meth:`StallingProxy.cut` closes the connections open now.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class StallingProxy:
    upstream_host: str
    upstream_port: int
    port: int = 0  # where it listens, once started
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def cut(self) -> None:
        """Close every connection open now (the proxy keeps listening)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.cut()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.add(client_w)
        try:
            server_r, server_w = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            client_w.close()
            return
        self._writers.add(server_w)
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(self._pipe(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def stalling_proxy(host: str, port: int) -> AsyncIterator[StallingProxy]:
    proxy = StallingProxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
