"""HTTP/2 flow control under WebSockets (RFC 9113 section 5.2, RFC 8441,
INTEROP.md pitfalls 7 and 8), with python-hyper h2 as the peer: h2 raises
FlowControlError on any DATA beyond the window it granted, so a server that
overshoots fails these tests at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import random

import h2.events
import h2.settings
import pytest
from aiopeer import Peer, connect
from helpers.servers import running_server, ws_request_headers

import h2ws
from h2ws import _core

pytestmark = pytest.mark.timeout(180)

KiB = 1 << 10
MiB = 1 << 20
INITIAL_WINDOW_SIZE = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE


def no_errors(peer: Peer) -> None:
    bad = [e for e in peer.events
           if isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated))]
    assert not bad, bad


async def close_cleanly(peer: Peer, *sids: int) -> None:
    """Answers the server's close frames (or starts the handshake), then
    waits for END_STREAM on each stream."""
    for sid in sids:
        if not peer.codecs[sid].close_sent:
            peer.queue_close(sid, 1000)
    await peer.until(lambda p: all(p.ended(s) for s in sids), timeout=10)
    for sid in sids:
        close = peer.close_event(sid)
        assert close is not None and close[1] == 1000, peer.messages(sid)[-3:]
    no_errors(peer)


async def test_unread_stream_stays_shut_while_another_moves_64_mib() -> None:
    """A handler that never calls recv() closes its own stream's window and
    holds at most a window's worth of messages; a second stream on the same
    connection moves 64 MiB meanwhile (pitfall 8, DESIGN.md flow control)."""
    window = 256 * KiB  # the server's default SETTINGS_INITIAL_WINDOW_SIZE
    idle_size, idle_count = 16 * KiB, 24  # 384 KiB: more than the window
    bulk_count = 64  # 1 MiB each
    release = asyncio.Event()
    sockets: dict[str, h2ws.WebSocket] = {}

    async def handler(ws: h2ws.WebSocket) -> None:
        sockets[ws.request.path] = ws
        if ws.request.path == "/idle":
            await release.wait()
            got = [await ws.recv() for _ in range(idle_count)]
            intact = got == [bytes([i]) * idle_size for i in range(idle_count)]
            await ws.send(f"idle intact={intact}")
            return
        count = total = 0
        async for message in ws:
            if message == "end":
                await ws.send(f"{count} {total}")
                continue
            assert message == bytes([count % 256]) * MiB
            count += 1
            total += len(message)

    async with running_server(handler, max_message_size=2 * MiB) as srv:
        peer = await connect(srv.port)
        idle = await peer.open_websocket("/idle")
        bulk = await peer.open_websocket("/bulk")
        assert peer.remote_settings.initial_window_size == window
        for i in range(idle_count):
            peer.queue_message(idle, bytes([i]) * idle_size)
        # The client sent a window's worth and has the rest waiting.
        assert peer.conn.local_flow_control_window(idle) == 0
        assert peer.pending(idle) > 0
        await peer.until(lambda p: "/idle" in sockets)
        ws_idle = sockets["/idle"]
        updates_before = peer.window_updates(idle)
        pending_before = peer.pending(idle)

        def held() -> tuple[int, int]:
            t = ws_idle.transport
            items = [m for m, _ in t._held] + list(ws_idle._messages)
            return len(items), sum(len(m) for m in items)

        queued = 0
        most_held = (0, 0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        while f"{bulk_count} {bulk_count * MiB}" not in peer.data_messages(bulk):
            while queued < bulk_count and peer.pending(bulk) < 2 * MiB:
                peer.queue_message(bulk, bytes([queued % 256]) * MiB)
                queued += 1
                if queued == bulk_count:
                    peer.queue_message(bulk, "end")
            await peer.read(timeout=10)
            # The idle stream stays shut the whole time...
            assert peer.conn.local_flow_control_window(idle) == 0
            assert peer.window_updates(idle) == updates_before
            # ...and the server keeps at most a window of its messages.
            n, size = held()
            most_held = max(most_held, (n, size))
            assert size <= window, (n, size)
            assert n <= window // idle_size + 1, (n, size)
        elapsed = loop.time() - start
        assert peer.pending(idle) == pending_before
        assert most_held[0] >= window // (idle_size + 8) - 1  # it did fill up
        print(f"64 MiB beside a shut stream in {elapsed:.2f}s; idle stream held {most_held}")

        # Reading at last returns the credit: the rest flows, all intact.
        release.set()
        await peer.until(lambda p: bool(p.data_messages(idle)) and p.close_event(idle) is not None,
                         timeout=10)
        assert peer.data_messages(idle) == ["idle intact=True"]
        assert peer.pending(idle) == 0
        await close_cleanly(peer, idle, bulk)
        await peer.close()


async def test_16_mib_message_through_a_65535_window_that_shrinks() -> None:
    """A 16 MiB message to a client with a 65,535-byte stream window that it
    reopens only as it reads, shrinks to 4 KiB mid-transfer (SETTINGS), grows
    again, and stops reading for a while: it arrives intact and the server
    never sends beyond the window (pitfall 7; RFC 9113 section 6.9.2)."""
    rng = random.Random(7)
    big = rng.randbytes(16 * MiB)

    async def handler(ws: h2ws.WebSocket) -> None:
        await ws.send(big)
        assert await ws.recv() == "got it"

    async with running_server(handler) as srv:
        peer = await connect(srv.port, settings={INITIAL_WINDOW_SIZE: 65535})
        sid = await peer.open_websocket(
            "/big", codec=_core.WebSocketCodec(client=True, max_message_size=32 * MiB)
        )
        shrink_at = grow_at = None
        paused = False
        loop = asyncio.get_running_loop()
        while not peer.data_messages(sid):
            await peer.read(timeout=10)
            got = peer.received.get(sid, 0)
            # The server never has more than our window in flight.
            assert peer.conn.remote_flow_control_window(sid) >= 0
            if shrink_at is None and got >= 4 * MiB:
                peer.conn.update_settings({INITIAL_WINDOW_SIZE: 4096})
                peer.flush()
                shrink_at = len(peer.events)
            elif grow_at is None and shrink_at is not None and got >= 8 * MiB:
                peer.conn.update_settings({INITIAL_WINDOW_SIZE: 65535})
                peer.flush()
                grow_at = len(peer.events)
            elif not paused and got >= 12 * MiB:
                # Stop reading: the window runs dry and nothing more comes.
                paused = True
                peer.slow.add(sid)
                # (the connection window is still returned: the stream's is the limit)
                allowed = max(peer.conn.streams[sid].inbound_flow_control_window, 0)
                before = peer.received[sid]
                end = loop.time() + 0.3
                while (left := end - loop.time()) > 0:
                    try:
                        await peer.read(timeout=left)
                    except (asyncio.TimeoutError, TimeoutError):
                        break
                assert peer.received[sid] - before <= allowed
                assert peer.conn.remote_flow_control_window(sid) >= 0
                peer.release(sid)
        assert peer.data_messages(sid) == [big]
        assert shrink_at is not None and grow_at is not None and paused

        # Once our smaller setting was acknowledged, no DATA frame on the
        # stream was larger than the 4 KiB window.
        acked = peer.index_of(
            lambda e: isinstance(e, h2.events.SettingsAcknowledged)
            and INITIAL_WINDOW_SIZE in e.changed_settings,
            start=shrink_at,
        )
        assert acked is not None and grow_at is not None and acked < grow_at
        sizes = [e.flow_controlled_length for e in peer.events[acked:grow_at]
                 if isinstance(e, h2.events.DataReceived) and e.stream_id == sid]
        assert sizes and max(sizes) <= 4096
        assert peer.largest_frame[sid] <= 16384  # our SETTINGS_MAX_FRAME_SIZE

        peer.queue_message(sid, "got it")
        await peer.until(lambda p: p.close_event(sid) is not None, timeout=10)
        await close_cleanly(peer, sid)
        await peer.close()


async def test_16_mib_message_from_client_through_minimal_windows() -> None:
    """Client to server: messages far larger than SETTINGS_MAX_FRAME_SIZE and
    than 65,535-byte stream and connection windows, one as a single frame and
    one fragmented, arrive intact (pitfall 7)."""

    async def handler(ws: h2ws.WebSocket) -> None:
        async for message in ws:
            kind = "text" if isinstance(message, str) else "binary"
            data = message.encode() if isinstance(message, str) else message
            await ws.send(f"{kind} {len(data)} {hashlib.sha256(data).hexdigest()}")

    rng = random.Random(8)
    single = rng.randbytes(16 * MiB)
    parts = [rng.randbytes(n) for n in (MiB + 7, 3, 2 * MiB, 65536, 1)]
    async with running_server(
        handler,
        initial_window_size=65535,
        connection_window_size=65535,
        max_message_size=32 * MiB,
    ) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket("/up")
        assert peer.remote_settings.initial_window_size == 65535
        assert peer.remote_settings.max_frame_size == 16384
        peer.queue_message(sid, single)
        codec = peer.codecs[sid]
        for i, part in enumerate(parts):
            opcode = _core.OP_BINARY if i == 0 else _core.OP_CONT
            codec.send_frame(opcode, part, fin=i == len(parts) - 1)
        peer.queue(sid, codec.data_to_send())
        await peer.until(lambda p: len(p.data_messages(sid)) == 2, timeout=60)
        joined = b"".join(parts)
        assert peer.data_messages(sid) == [
            f"binary {len(single)} {hashlib.sha256(single).hexdigest()}",
            f"binary {len(joined)} {hashlib.sha256(joined).hexdigest()}",
        ]
        await close_cleanly(peer, sid)
        await peer.close()


async def test_slow_reader_does_not_delay_other_streams() -> None:
    """A client that stops reading one WebSocket (its stream window runs out
    and the handler's send() waits) still gets a plain request answered and
    another WebSocket's echo on the same connection (pitfall 8)."""
    chunk, chunks = 64 * KiB, 32  # 2 MiB to a reader that takes 64 KiB
    sockets: dict[str, h2ws.WebSocket] = {}

    async def handler(ws: h2ws.WebSocket) -> None:
        sockets[ws.request.path] = ws
        if ws.request.path == "/firehose":
            for i in range(chunks):
                await ws.send(bytes([i]) * chunk)
            await ws.send("done")
            await ws.recv()
            return
        async for message in ws:
            await ws.send(message)

    def process_request(request: h2ws.Request) -> h2ws.Response | None:
        if request.method == "GET" and request.path == "/plain":
            return h2ws.Response(200, [("content-type", "text/plain")], b"plain ok\n")
        return None

    async with running_server(handler, process_request=process_request) as srv:
        peer = await connect(srv.port)
        peer.conn.increment_flow_control_window(16 * MiB)  # the connection is not the limit
        peer.flush()
        await peer.wait_settings()
        slow = peer.request(ws_request_headers("/firehose"))
        peer.slow.add(slow)  # before the first byte arrives
        peer.codecs[slow] = _core.WebSocketCodec(client=True)
        await peer.until(lambda p: p.status(slow) == 200)
        echo = await peer.open_websocket("/echo")
        # The slow stream's window (65,535 by default) is used up and the
        # handler waits in send().
        await peer.until(lambda p: p.received.get(slow, 0) >= 65535)
        await peer.until(lambda p: "/firehose" in sockets and sockets["/firehose"]._write_paused)
        assert peer.received[slow] == 65535
        stalled_at = peer.received[slow]

        loop = asyncio.get_running_loop()
        start = loop.time()
        plain = peer.request([(":method", "GET"), (":scheme", "http"), (":path", "/plain"),
                              (":authority", "127.0.0.1")], end_stream=True)
        peer.queue_message(echo, "ping through")
        await peer.until(lambda p: p.ended(plain) and bool(p.data_messages(echo)))
        elapsed = loop.time() - start
        assert peer.status(plain) == 200
        body = b"".join(e.data for e in peer.events
                        if isinstance(e, h2.events.DataReceived) and e.stream_id == plain)
        assert body == b"plain ok\n"
        assert peer.data_messages(echo) == ["ping through"]
        # ...while the slow stream is still stalled.
        assert peer.received[slow] == stalled_at
        assert sockets["/firehose"]._write_paused
        assert elapsed < 2.0, elapsed

        # The reader catches up: everything arrives, in order.
        peer.release(slow)
        await peer.until(lambda p: "done" in p.data_messages(slow), timeout=20)
        assert peer.data_messages(slow) == [bytes([i]) * chunk for i in range(chunks)] + ["done"]
        peer.queue_message(slow, "thanks")
        await peer.until(lambda p: p.close_event(slow) is not None)
        await close_cleanly(peer, slow, echo)
        await peer.close()
