"""Graceful shutdown (INTEROP.md pitfall 12): ``server.close()`` sends close
1001 on every WebSocket, then GOAWAY (a notice, then the final one once the
streams ended), and ``wait_closed()`` returns within ``shutdown_timeout``;
streams whose peer never finishes are reset when that time is up.
"""

from __future__ import annotations

import asyncio

import h2.errors
import h2.events
import pytest
from aiopeer import Peer, connect
from helpers.servers import running_server, ws_request_headers

import h2ws
from h2ws import _core

pytestmark = pytest.mark.timeout(180)

REFUSED_STREAM = int(h2.errors.ErrorCodes.REFUSED_STREAM)
CANCEL = int(h2.errors.ErrorCodes.CANCEL)
MAX_STREAM_ID = 2**31 - 1


async def open_many(peer: Peer, n: int, path: str = "/") -> list[int]:
    """n WebSockets at once on one connection."""
    await peer.wait_settings()
    sids = []
    for i in range(n):
        sid = peer.request(ws_request_headers(f"{path}{i}"))
        peer.codecs[sid] = _core.WebSocketCodec(client=True)
        sids.append(sid)
    await peer.until(lambda p: all(p.status(s) == 200 for s in sids), timeout=10)
    return sids


def goaways(peer: Peer) -> list[tuple[int, h2.events.ConnectionTerminated]]:
    return [(i, e) for i, e in enumerate(peer.events)
            if isinstance(e, h2.events.ConnectionTerminated)]


def stream_end_at(peer: Peer, sid: int) -> int | None:
    return peer.index_of(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == sid)


async def echo(ws: h2ws.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def test_close_sends_1001_then_goaway_and_drains() -> None:
    """50 WebSockets on one connection and 10 on another: each gets close
    1001 before any GOAWAY, then END_STREAM once the client answered, and no
    RST_STREAM; a new WebSocket after the GOAWAY notice is refused; the final
    GOAWAY follows and wait_closed() returns well within shutdown_timeout."""
    shutdown_timeout = 10.0
    async with running_server(echo, shutdown_timeout=shutdown_timeout) as srv:
        first = await connect(srv.port, survive_goaway=True)
        second = await connect(srv.port, survive_goaway=True)
        peers = {first: await open_many(first, 50), second: await open_many(second, 10)}
        # Everything works before the shutdown.
        first.queue_message(peers[first][0], "still open")
        await first.until(lambda p: p.data_messages(peers[first][0]) == ["still open"])

        loop = asyncio.get_running_loop()
        start = loop.time()
        srv.server.close()
        closed = asyncio.ensure_future(srv.server.wait_closed())

        for peer, sids in peers.items():
            await peer.until(lambda p, sids=sids: all(s in p.close_at for s in sids)
                             and bool(goaways(p)), timeout=10)
            notice_at, notice = goaways(peer)[0]
            assert notice.error_code == 0 and notice.last_stream_id == MAX_STREAM_ID
            for sid in sids:
                close = peer.close_event(sid)
                assert close is not None and close[1] == 1001, close
                # Firefox drops its WebSockets at any GOAWAY: closes go first.
                assert peer.close_at[sid] < notice_at, (sid, peer.close_at[sid], notice_at)
                assert not peer.ended(sid)  # END_STREAM waits for our close frame

        # A new WebSocket after the notice: REFUSED_STREAM, the connection lives on.
        late = first.request(ws_request_headers("/late"))
        await first.until(lambda p: p.reset_code(late) is not None)
        assert first.reset_code(late) == REFUSED_STREAM
        assert first.status(late) is None

        for peer, sids in peers.items():
            for sid in sids:
                peer.queue_close(sid, 1001)
        for peer, sids in peers.items():
            await peer.until(lambda p, sids=sids: all(p.ended(s) for s in sids)
                             and len(goaways(p)) >= 2, timeout=10)
            for sid in sids:
                assert peer.reset_code(sid) is None, sid
                assert peer.close_at[sid] < stream_end_at(peer, sid)
            final_at, final = goaways(peer)[-1]
            assert final.error_code == 0
            assert max(sids) <= final.last_stream_id < MAX_STREAM_ID
            assert final_at > max(stream_end_at(peer, s) for s in sids)
            # Then the server closes the connection.
            await peer.until(lambda p: p.reader.at_eof(), timeout=5)

        await asyncio.wait_for(closed, shutdown_timeout)
        elapsed = loop.time() - start
        assert elapsed < shutdown_timeout / 2, elapsed
        for peer in peers:
            await peer.close()


async def test_shutdown_without_websockets_is_immediate() -> None:
    async with running_server(echo, shutdown_timeout=10.0) as srv:
        peer = await connect(srv.port, survive_goaway=True)
        await peer.wait_settings()
        loop = asyncio.get_running_loop()
        start = loop.time()
        srv.server.close()
        await peer.until(lambda p: p.reader.at_eof() and bool(goaways(p)), timeout=5)
        await asyncio.wait_for(srv.server.wait_closed(), 5)
        assert loop.time() - start < 2.0
        assert all(e.error_code == 0 for _, e in goaways(peer))
        await peer.close()


async def test_streams_that_never_finish_are_reset_after_shutdown_timeout() -> None:
    """A handler that ignores the close and a client that never answers it:
    the streams are reset (CANCEL) once shutdown_timeout is up, the final
    GOAWAY goes out and the server finishes."""
    shutdown_timeout = 0.5
    handler_ended = asyncio.Event()

    async def stubborn(ws: h2ws.WebSocket) -> None:
        try:
            while True:
                try:
                    await ws.recv()
                except h2ws.ConnectionClosed:
                    await asyncio.sleep(0.05)  # ignores it and carries on
        finally:
            handler_ended.set()

    async with running_server(stubborn, shutdown_timeout=shutdown_timeout) as srv:
        peer = await connect(srv.port, survive_goaway=True)
        sids = await open_many(peer, 5)
        loop = asyncio.get_running_loop()
        start = loop.time()
        srv.server.close()
        closed = asyncio.ensure_future(srv.server.wait_closed())
        # The client reads everything but never answers the close frames.
        await peer.until(lambda p: all(p.reset_code(s) is not None for s in sids), timeout=5)
        reset_after = loop.time() - start
        for sid in sids:
            close = peer.close_event(sid)
            assert close is not None and close[1] == 1001
            assert peer.reset_code(sid) == CANCEL
            assert not peer.ended(sid)
        assert shutdown_timeout * 0.9 <= reset_after < shutdown_timeout + 2.0, reset_after
        await peer.until(lambda p: p.reader.at_eof(), timeout=5)
        assert len(goaways(peer)) >= 2
        await asyncio.wait_for(closed, 5)
        assert loop.time() - start < shutdown_timeout + 2.0
        await asyncio.wait_for(handler_ended.wait(), 5)  # the handler task was cancelled
        await peer.close()
