"""Closing WebSockets over HTTP/2 at the frame level (RFC 8441 §5: the
stream's END_STREAM plays the part of the TCP FIN of RFC 6455, RST_STREAM
the part of a reset), and the graceful shutdown of a server.

The peer is python-hyper ``h2`` driving an ``h2ws.serve()`` server; every
HTTP/2 event it receives is recorded, so the tests check the order of close
frames, END_STREAM, RST_STREAM and GOAWAY.
"""

from __future__ import annotations

import asyncio

import h2.events
import pytest
from h2peer import (
    CANCEL,
    NO_ERROR,
    REFUSED_STREAM,
    Recorder,
    answer,
    close_frame_index,
    echo_ok,
    keep_streams_after_goaway,
    open_ws,
    reply_close,
    request,
    serving,
    settle,
    until_ended,
    wait_close,
    ws_closes,
    ws_headers,
)
from helpers.servers import H2Client

import h2ws

pytestmark = pytest.mark.timeout(120)

TLS = pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])


def end_index(client: H2Client, sid: int) -> int:
    for i, e in enumerate(client.events):
        if isinstance(e, h2.events.StreamEnded) and e.stream_id == sid:
            return i
    raise AssertionError(f"stream {sid} never ended")


def goaways(client: H2Client) -> list[tuple[int, h2.events.ConnectionTerminated]]:
    return [
        (i, e) for i, e in enumerate(client.events) if isinstance(e, h2.events.ConnectionTerminated)
    ]


# -- the client closes -------------------------------------------------------------


@TLS
@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1001, "going away"), (4000, "app")])
async def test_client_close_with_end_stream(tls: bool, code: int, reason: str) -> None:
    """RFC 6455 §5.5.1 / §7.1.2 over RFC 8441 §5, INTEROP pitfall 9 (Chromium
    sends its close frame and END_STREAM in one DATA frame): the server
    answers with a close frame echoing the code, then END_STREAM, and never
    a RST_STREAM on that stream, not even a little later."""
    rec = Recorder()
    async with serving(rec, tls=tls) as (_, client):
        sid = await open_ws(client, "/c")
        await echo_ok(client, sid)
        client.ws_close(sid, code, reason, end_stream=True)
        assert await wait_close(client, sid) == (code, "")
        await until_ended(client, sid)
        assert client.ended(sid)
        assert close_frame_index(client, sid) <= end_index(client, sid)
        exc = await rec.raised("/c")
        assert (exc.code, exc.reason) == (code, reason)
        assert isinstance(
            exc, h2ws.ConnectionClosedOK if code in (1000, 1001) else h2ws.ConnectionClosedError
        )
        await settle(client, 0.2)
        assert client.reset_code(sid) is None
        await echo_ok(client, await open_ws(client, "/next"))


async def test_client_close_then_end_stream_separately() -> None:
    """RFC 6455 §7.1.2 over RFC 8441 §5: a close frame alone, then (after the
    server's answer) an empty DATA with END_STREAM: both sides end cleanly,
    no RST_STREAM."""
    rec = Recorder()
    async with serving(rec) as (_, client):
        sid = await open_ws(client, "/c")
        client.ws_close(sid, 1000, end_stream=False)
        assert (await wait_close(client, sid))[0] == 1000
        await until_ended(client, sid)  # the server's END_STREAM after its close frame
        client.ws_send_raw(sid, b"", end_stream=True)
        exc = await rec.raised("/c")
        assert isinstance(exc, h2ws.ConnectionClosedOK) and exc.code == 1000
        await settle(client, 0.2)
        assert client.reset_code(sid) is None


async def test_client_close_without_code() -> None:
    """RFC 6455 §7.1.5 / §5.5.1: a close frame without a status code is
    answered by an empty close frame; the application sees 1005."""
    rec = Recorder()
    async with serving(rec) as (_, client):
        sid = await open_ws(client, "/c")
        client.ws_close(sid, None, end_stream=True)
        assert await wait_close(client, sid) == (1005, "")
        await until_ended(client, sid)
        exc = await rec.raised("/c")
        assert exc.code == 1005
        await settle(client)
        assert client.reset_code(sid) is None


@TLS
async def test_client_end_stream_without_close_frame_is_1006(tls: bool) -> None:
    """RFC 6455 §7.1.5 / §7.4.1 (1006: closed without a close frame) over RFC
    8441 §5 (END_STREAM is the FIN), INTEROP pitfall 9: the handler's recv()
    raises ConnectionClosedError 1006 and the server ends its side with
    END_STREAM, no RST_STREAM."""
    rec = Recorder()
    async with serving(rec, tls=tls) as (_, client):
        sid = await open_ws(client, "/e")
        await echo_ok(client, sid)
        client.ws_send_raw(sid, b"", end_stream=True)
        exc = await rec.raised("/e")
        assert isinstance(exc, h2ws.ConnectionClosedError) and exc.code == 1006
        await until_ended(client, sid)
        assert client.ended(sid)
        await settle(client)
        assert client.reset_code(sid) is None
        await echo_ok(client, await open_ws(client, "/next"))


async def test_client_end_stream_after_a_message() -> None:
    """RFC 6455 §7.1.5 over RFC 8441 §5: a last message and END_STREAM in the
    same DATA frame: the message still reaches the handler, then 1006."""
    got: list[object] = []
    done = asyncio.Event()

    async def handler(ws: h2ws.WebSocket) -> None:
        try:
            while True:
                got.append(await ws.recv())
        except h2ws.ConnectionClosed as exc:
            got.append(exc.code)
            done.set()

    async with serving(handler) as (_, client):
        sid = await open_ws(client)
        client.ws_send(sid, "last words", end_stream=True)
        await asyncio.wait_for(done.wait(), 5)
        assert got == ["last words", 1006]
        await until_ended(client, sid)
        assert client.reset_code(sid) is None


@TLS
async def test_client_rst_stream_is_1006(tls: bool) -> None:
    """RFC 8441 §5 (RST_STREAM stands for a TCP reset), RFC 6455 §7.1.5,
    INTEROP pitfall 9: the client resets the stream with CANCEL; the handler
    sees ConnectionClosedError 1006; the connection carries on."""
    rec = Recorder()
    async with serving(rec, tls=tls) as (_, client):
        sid = await open_ws(client, "/r")
        await echo_ok(client, sid)
        client.conn.reset_stream(sid, CANCEL)
        client.flush()
        exc = await rec.raised("/r")
        assert isinstance(exc, h2ws.ConnectionClosedError) and exc.code == 1006
        await echo_ok(client, await open_ws(client, "/next"))


# -- the server closes ---------------------------------------------------------------


@TLS
@pytest.mark.parametrize(("outcome", "code"), [("return", 1000), ("raise", 1011)])
async def test_server_close_waits_for_client_close(
    tls: bool, outcome: str, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 6455 §7.1.2 / §7.1.1 over RFC 8441 §5: when the handler returns
    (1000) or raises (1011), the server sends its close frame, then waits:
    END_STREAM only after the client's close frame, and no RST_STREAM."""

    async def handler(ws: h2ws.WebSocket) -> None:
        await ws.recv()
        if outcome == "raise":
            raise RuntimeError("handler failure (expected by the test)")

    async with serving(handler, tls=tls) as (_, client):
        sid = await open_ws(client)
        client.ws_send(sid, "go")
        assert (await wait_close(client, sid))[0] == code
        await settle(client, 0.2)
        assert not client.ended(sid), "END_STREAM before the client's close frame"
        assert client.reset_code(sid) is None
        reply_close(client, sid, code)
        await until_ended(client, sid)
        assert client.ended(sid)
        await settle(client)
        assert client.reset_code(sid) is None
    if outcome == "raise":
        assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)
    # The captured record's traceback keeps the connection (and its C core
    # allocations) alive past the leak check of conftest.py.
    caplog.clear()


async def test_server_close_then_client_end_stream_separately() -> None:
    """RFC 6455 §7.1.2: the client's close frame without END_STREAM ends the
    server's side (END_STREAM); the client's END_STREAM then ends the
    stream; no RST_STREAM."""

    async def handler(ws: h2ws.WebSocket) -> None:
        await ws.close(1000, "bye")

    async with serving(handler) as (_, client):
        sid = await open_ws(client)
        assert await wait_close(client, sid) == (1000, "bye")
        reply_close(client, sid, 1000, end_stream=False)
        await until_ended(client, sid)
        client.ws_send_raw(sid, b"", end_stream=True)
        await settle(client)
        assert client.reset_code(sid) is None


async def test_silent_peer_after_server_close_gets_cancel() -> None:
    """RFC 8441 §5 (RST_STREAM CANCEL is the reset of the stream), RFC 6455
    §7.1.1, INTEROP pitfall 9: a peer that never answers the server's close
    frame gets RST_STREAM(CANCEL) after close_timeout (0.5 s here); the
    handler's WebSocket ends with 1006."""
    closed: list[int | None] = []

    async def handler(ws: h2ws.WebSocket) -> None:
        await ws.close(1000)
        closed.append(ws.close_code)

    async with serving(handler, close_timeout=0.5) as (_, client):
        loop = asyncio.get_running_loop()
        sid = await open_ws(client)
        start = loop.time()
        assert (await wait_close(client, sid))[0] == 1000
        await client.until(lambda c: c.reset_code(sid) is not None, timeout=3)
        elapsed = loop.time() - start
        assert client.reset_code(sid) == CANCEL
        assert 0.4 <= elapsed < 2.0, elapsed
        assert not client.ended(sid)
        await settle(client, 0.05)
        assert closed == [1006]
        again = await open_ws(client)  # the connection carries on
        assert (await wait_close(client, again))[0] == 1000


async def test_peer_that_never_ends_its_side_gets_cancel() -> None:
    """RFC 6455 §7.1.1 / RFC 8441 §5: after the close handshake the server
    ended its side; a client that never sends END_STREAM is reset with
    CANCEL after close_timeout, never held forever."""
    async with serving(close_timeout=0.3) as (_, client):
        sid = await open_ws(client)
        client.ws_close(sid, 1000, end_stream=False)
        await until_ended(client, sid)  # the server's close + END_STREAM
        await client.until(lambda c: c.reset_code(sid) is not None, timeout=3)
        assert client.reset_code(sid) == CANCEL


# -- graceful shutdown ---------------------------------------------------------------


@TLS
async def test_graceful_shutdown_1001_then_goaway(tls: bool) -> None:
    """INTEROP pitfall 12 (and Firefox, haproxy#2789: close 1001 on every
    WebSocket before GOAWAY), RFC 6455 §7.4.1 (1001 going away), RFC 9113
    §6.8: server.close() sends close 1001 on each WebSocket, then a GOAWAY;
    a new extended CONNECT after it is refused (REFUSED_STREAM); each stream
    ends cleanly once the client answers; a final GOAWAY NO_ERROR follows and
    wait_closed() returns well within shutdown_timeout."""
    rec = Recorder()
    async with serving(rec, tls=tls, shutdown_timeout=3.0) as (srv, client):
        loop = asyncio.get_running_loop()
        sids = [await open_ws(client, f"/{i}") for i in range(3)]
        for sid in sids:
            await echo_ok(client, sid)
        keep_streams_after_goaway(client)
        start = loop.time()
        srv.server.close()
        await client.until(lambda c: all(ws_closes(c, s) for s in sids) and goaways(c))
        for sid in sids:
            assert ws_closes(client, sid)[0][0] == 1001
            assert client.reset_code(sid) is None
        first_goaway = goaways(client)[0][0]
        for sid in sids:
            assert close_frame_index(client, sid) < first_goaway, "GOAWAY before a close frame"
        # A new WebSocket after the notice is refused, never served.
        late = request(client, ws_headers(client, "/late"))
        await answer(client, late)
        assert client.reset_code(late) == REFUSED_STREAM
        assert "/late" not in rec.sockets
        for sid in sids:
            reply_close(client, sid, 1001)
        await client.until(lambda c: all(c.ended(s) for s in sids))
        await asyncio.wait_for(srv.server.wait_closed(), 3.0)
        assert loop.time() - start < 3.0
        await settle(client, 0.1)
        for sid in sids:
            assert client.reset_code(sid) is None
            exc = await rec.raised(f"/{sids.index(sid)}")
            assert isinstance(exc, h2ws.ConnectionClosedOK) and exc.code == 1001
        final = goaways(client)[-1][1]
        assert final.error_code == NO_ERROR
        assert final.last_stream_id is not None and final.last_stream_id >= max(sids)


async def test_graceful_shutdown_is_bounded() -> None:
    """INTEROP pitfall 12 (bounded drain), RFC 9113 §6.8: a client that
    never answers the 1001 close frames does not hold the server: after
    shutdown_timeout its streams are reset (CANCEL) and wait_closed()
    returns."""
    async with serving(shutdown_timeout=0.5) as (srv, client):
        loop = asyncio.get_running_loop()
        sids = [await open_ws(client, f"/{i}") for i in range(2)]
        keep_streams_after_goaway(client)
        start = loop.time()
        srv.server.close()
        await asyncio.wait_for(srv.server.wait_closed(), 3.0)
        elapsed = loop.time() - start
        assert 0.4 <= elapsed < 2.0, elapsed
        await settle(client, 0.2)
        for sid in sids:
            assert ws_closes(client, sid)[0][0] == 1001
            assert client.reset_code(sid) == CANCEL
