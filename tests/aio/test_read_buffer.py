"""Connections on one event loop, servers' and clients' alike, read into one
shared buffer: holding many connections costs no 256 KiB buffer each."""

from __future__ import annotations

import contextlib
import tracemalloc

from helpers.servers import running_server

import h2ws
from h2ws._readbuf import READ_BUFFER

N = 20


async def echo(ws: h2ws.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def test_many_connections_share_the_loops_read_buffer() -> None:
    async with running_server(echo) as srv, contextlib.AsyncExitStack() as stack:
        for http2 in (False, True):  # the buffer exists before the measurement
            uri = f"ws://127.0.0.1:{srv.port}/warm"
            ws = await stack.enter_async_context(h2ws.connect(uri, http2=http2, pool=None))
            await ws.send(b"x" * 1000)
            assert await ws.recv() == b"x" * 1000
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(N):  # N HTTP/1.1 and N HTTP/2 connections, both ends here
                for http2 in (False, True):
                    uri = f"ws://127.0.0.1:{srv.port}/{i}"
                    ws = await stack.enter_async_context(h2ws.connect(uri, http2=http2, pool=None))
                    await ws.send(b"y" * 1000)
                    assert await ws.recv() == b"y" * 1000
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    # 4 N connection ends: with a buffer each that would be 4 N x 256 KiB (20 MiB).
    assert grown < N * READ_BUFFER, grown
