"""The large-message paths (docs/design-notes.md, Performance, bulk): a message
of 64 KiB or more that arrives in one frame becomes its bytes object in place;
one sent as ``bytes`` is queued by reference (HTTP/2) or written into the output
object (HTTP/1.1). These check that what goes out is what was sent, in order,
whatever is queued behind a message held by reference, with python-hyper h2
and the client codec as the peer.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib

import pytest
from aiopeer import connect
from helpers.servers import running_server

import h2ws
from h2ws import _core

pytestmark = pytest.mark.timeout(120)

KiB = 1 << 10
MiB = 1 << 20


def pattern(n: int, seed: int) -> bytes:
    block = hashlib.sha256(seed.to_bytes(4, "big")).digest()
    return (block * (n // len(block) + 1))[:n]


async def test_large_messages_by_reference_keep_their_order() -> None:
    """A large message queued by reference, then a small one, a ping and a
    large one again before any of it is written: everything arrives in the
    order sent, byte for byte (RFC 6455 section 5.4: frames of different
    messages are not interleaved), and the echo of large received messages is
    intact."""
    big1, big2 = pattern(3 * MiB + 7, 1), pattern(MiB, 2)

    async def handler(ws: h2ws.WebSocket) -> None:
        async for message in ws:
            if message == "go":
                await ws.send(big1)
                await ws.send(b"small")
                await ws.ping(b"p")
                await ws.send(big2)
                await ws.send("done")
            else:
                await ws.send(message)

    async with running_server(handler, max_message_size=8 * MiB) as srv:
        peer = await connect(srv.port)
        codec = _core.WebSocketCodec(client=True, max_message_size=8 * MiB)
        sid = await peer.open_websocket("/", codec=codec)
        peer.queue_message(sid, "go")
        echo = pattern(2 * MiB + 3, 3)
        peer.queue_message(sid, echo)
        await peer.until(lambda p: len(p.data_messages(sid)) >= 5, timeout=30)
        got = peer.data_messages(sid)
        assert [len(m) for m in got[:5]] == [len(big1), 5, len(big2), 4, len(echo)]
        assert got[0] == big1 and got[1] == b"small" and got[2] == big2
        assert got[3] == "done" and got[4] == echo
        peer.queue_close(sid, 1000)
        await peer.until(lambda p: p.ended(sid), timeout=10)


def test_codec_large_message_round_trip() -> None:
    """The HTTP/1.1 codec: a large binary message sent from bytes comes out of
    data_to_send() as one frame, and a large single-frame message is received
    intact; control frames queued behind it follow it."""
    server = _core.WebSocketCodec(max_message_size=4 * MiB)
    client = _core.WebSocketCodec(client=True, max_message_size=4 * MiB)
    msg = pattern(MiB + 1, 4)
    server.send(msg)
    server.ping(b"x")
    events = client.receive_data(server.data_to_send())
    assert events[0] == (_core.EV_BINARY, msg)
    assert events[1][0] == _core.EV_PING
    client.send(msg)
    wire = client.data_to_send()
    got: list[object] = []
    for i in range(0, len(wire), 100 * KiB):  # split reads
        got.extend(server.receive_data(wire[i:i + 100 * KiB]))
    assert got == [(_core.EV_BINARY, msg)]
    assert isinstance(got[0][1], bytes)  # type: ignore[index]


def h2_pair(window: int) -> tuple[_core.H2Connection, _core.H2Connection, int, int]:
    """A client and a server H2Connection with one WebSocket open between them
    (the client's receive windows are `window`)."""
    client = _core.H2Connection(
        client=True, initial_window_size=window, connection_window_size=window,
        max_message_size=64 * MiB,
    )
    server = _core.H2Connection(max_message_size=64 * MiB)
    for _ in range(3):
        server.receive_data(client.data_to_send())
        client.receive_data(server.data_to_send())
    client.events()
    csid = client.connect_websocket(
        [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
         (":path", "/"), (":authority", "x"), ("sec-websocket-version", "13")]
    )
    events = server.receive_data(client.data_to_send())
    ssid = events[-1][1]
    server.accept(ssid)
    client.receive_data(server.data_to_send())
    return client, server, csid, ssid


def pump(
    client: _core.H2Connection,
    server: _core.H2Connection,
    csid: int,
    scatter: bool,
    rounds: int,
    wire: list[bytes],
    got: list[object],
    kinds: set[type],
) -> None:
    """Moves the server's output to the client (data_to_write() if `scatter`,
    else data_to_send()) and the client's window back, `rounds` times at
    most; appends what went out to `wire`, the messages to `got`."""
    for _ in range(rounds):
        out = server.data_to_write() if scatter else server.data_to_send()
        if isinstance(out, list):
            kinds.update(type(x) for x in out)
            out = b"".join(out)
        if not out:
            return
        wire.append(out)
        for e in client.receive_data(out):
            if e[0] in (_core.SEV_BINARY, _core.SEV_TEXT):
                got.append(e[2])
                client.consume(csid, e[3])  # the window comes back
        server.receive_data(client.data_to_send())


@pytest.mark.parametrize("window", [64 * KiB, MiB, 16 * MiB])
def test_data_to_write_gives_the_bytes_data_to_send_gives(window: int) -> None:
    """data_to_write() leaves the payload of large messages sent as bytes in
    place (memoryviews of it between the frame headers) when 256 KiB or more
    of it may go out (the window permitting), and otherwise gives
    what data_to_send() gives: the same bytes on the wire, frame for frame,
    for two identical connections, with small messages, pings and a close
    queued around the large ones, whatever the peer's window."""
    big1, big2 = pattern(3 * MiB + 5, 5), pattern(200 * KiB, 6)
    messages: list[bytes | str] = [b"a", big1, b"b", big2, "text", big2, big1]
    wires: list[list[bytes]] = [[], []]
    kinds: set[type] = set()
    for scatter in (False, True):
        client, server, csid, ssid = h2_pair(window)
        got: list[object] = []
        wire = wires[scatter]
        # Each message partly written (within the window), then a ping queued
        # behind what is left of it (copied into the queue), or all written.
        for n, message in enumerate(messages):
            server.send(ssid, message)
            pump(client, server, csid, scatter, 1 if n % 2 else 1000, wire, got, kinds)
            server.send_frame(ssid, _core.OP_PING, b"p")
        server.close(ssid, 1000, "bye")
        pump(client, server, csid, scatter, 1000, wire, got, kinds)
        assert got == messages
    assert b"".join(wires[0]) == b"".join(wires[1])
    # In pieces only when 256 KiB or more of such payload may go out at once.
    assert kinds == ({bytes, memoryview} if window >= MiB else set())


def test_data_to_write_views_keep_the_message() -> None:
    """The memoryviews of data_to_write() hold the message they show: the
    caller may drop its message and the connection at once; the bytes stay
    valid until the views go. Nothing is left allocated afterwards."""
    client, server, csid, ssid = h2_pair(16 * MiB)
    message = pattern(2 * MiB, 7)
    expected = bytes(message)  # a copy
    server.send(ssid, message)
    del message
    out = server.data_to_write()
    assert isinstance(out, list)
    del server
    gc.collect()
    events = client.receive_data(b"".join(out))
    del out
    assert [e[2] for e in events if e[0] == _core.SEV_BINARY] == [expected]


def test_one_stream_exchange_leaves_nothing_queued() -> None:
    """A single stream that sent all it had ends the call's DATA there (the
    core then skips nghttp2 detaching and re-attaching the stream on every
    message): each data_to_write() still carries everything that is due,
    control frames included (WINDOW_UPDATEs of a 64 KiB window, PING ACKs),
    a second call has nothing left, and every message comes back in order.
    With a second stream open, both streams' DATA go out in the same call."""
    client, server, csid, ssid = h2_pair(64 * KiB)
    client_ping = bytes([0, 0, 8, 6, 0, 0, 0, 0, 0]) + b"12345678"
    echoed: list[bytes] = []
    for n in range(300):
        client.send(csid, pattern(1000 + n * 37, n))
        wire = client.data_to_send() + (client_ping if n % 7 == 0 else b"")
        for e in server.receive_data(wire):
            if e[0] == _core.SEV_BINARY:
                server.send(ssid, e[2])
                server.consume(ssid, e[3])
        out = server.data_to_write()
        assert isinstance(out, bytes)
        assert server.data_to_write() == b""  # nothing held back
        for e in client.receive_data(out):
            if e[0] == _core.SEV_BINARY:
                echoed.append(e[2])
                client.consume(csid, e[3])
        assert (n % 7 != 0) or b"\x00\x00\x08\x06\x01" in out  # the PING ACK
    assert echoed == [pattern(1000 + n * 37, n) for n in range(300)]
    # A second stream: after the first sent its message, the second's follows.
    client.connect_websocket(
        [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
         (":path", "/2"), (":authority", "x"), ("sec-websocket-version", "13")]
    )
    ssid2 = server.receive_data(client.data_to_send())[-1][1]
    server.accept(ssid2)
    client.receive_data(server.data_to_write())  # type: ignore[arg-type]
    server.send(ssid, b"one")
    server.send(ssid2, b"two")
    events = client.receive_data(server.data_to_write())  # type: ignore[arg-type]
    assert sorted(e[2] for e in events if e[0] == _core.SEV_BINARY) == [b"one", b"two"]
    assert server.data_to_write() == b""


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(test_large_messages_by_reference_keep_their_order())
