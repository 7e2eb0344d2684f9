"""The large-message paths (docs/design-notes.md, Performance, bulk): a message
of 64 KiB or more that arrives in one frame becomes its bytes object in place;
one sent as ``bytes`` is queued by reference (HTTP/2) or written into the output
object (HTTP/1.1). These check that what goes out is what was sent, in order,
whatever is queued behind a message held by reference, with python-hyper h2
and the client codec as the peer.
"""

from __future__ import annotations

import asyncio
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


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(test_large_messages_by_reference_keep_their_order())
