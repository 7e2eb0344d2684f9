"""The per-message path of an HTTP/1.1 WebSocket in C (``_core.H1Carrier``, the
base of ``h2ws.h1ws.H1WebSocketCarrier``), driven byte by byte through the
server protocol with a fake transport: what one read does (every event
dispatched in order, one write), what happens when a callback raises or
swaps the carrier's state mid-read, and that the objects are collected.

End-to-end behaviour with real peers is in test_h1_websocket.py.
"""

from __future__ import annotations

import asyncio
import gc
import os
import weakref
from typing import Any

import pytest

import h2ws
from h2ws import _core
from h2ws.config import ServerConfig
from h2ws.h1 import H1ServerProtocol
from h2ws.h1ws import H1WebSocketCarrier
from h2ws.server import Server

pytestmark = pytest.mark.timeout(60)

MASK = b"\x11\x22\x33\x44"
UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class FakeTransport(asyncio.Transport):
    def __init__(self, buffered: int = 0) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.buffered = buffered
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


class Recorder(h2ws.WebSocketProtocol):
    """Echoes every message; records them; `on_message` (if set) runs first."""

    def __init__(self) -> None:
        self.messages: list[h2ws.websocket.Data] = []
        self.on_message: Any = None
        self.lost: Any = None

    def connection_made(self, transport: h2ws.WebSocketTransport) -> None:
        self.transport = transport

    def message_received(self, message: h2ws.websocket.Data) -> None:
        self.messages.append(message)
        if self.on_message is not None:
            self.on_message(message)
        self.transport.send(message)

    def connection_lost(self, exc: Any) -> None:
        self.lost = exc


def feed(proto: H1ServerProtocol, data: bytes) -> None:
    """One read of `data` (which must fit the read buffer)."""
    buf = proto.get_buffer(-1)
    buf[: len(data)] = data
    proto.buffer_updated(len(data))


def client_frame(opcode: int, payload: bytes) -> bytes:
    return _core.build_frame(opcode, payload, mask=MASK)


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The (opcode, payload) of each unmasked frame in `data`."""
    out = []
    while data:
        parsed = _core.parse_frame_header(data)
        assert parsed is not None
        fin, _rsv, opcode, masked, _key, length, size = parsed
        assert fin and not masked
        out.append((opcode, data[size : size + length]))
        data = data[size + length :]
    return out


async def upgraded(
    recorder: Recorder, transport: FakeTransport | None = None, **config: Any
) -> tuple[H1ServerProtocol, FakeTransport]:
    cfg = ServerConfig(ping_interval=None, ping_timeout=None, **config)
    server = Server(
        None, protocol_factory=lambda: recorder, subprotocols=None, process_request=None, config=cfg
    )
    proto = H1ServerProtocol(server)
    tr = transport or FakeTransport()
    proto.connection_made(tr)
    feed(proto, UPGRADE)
    for _ in range(3):
        await asyncio.sleep(0)
    assert proto._codec is not None
    assert tr.writes and tr.writes[0].startswith(b"HTTP/1.1 101 ")
    tr.writes.clear()
    return proto, tr


def test_the_carrier_is_the_c_base() -> None:
    assert issubclass(H1WebSocketCarrier, _core.H1Carrier)
    assert H1ServerProtocol.buffer_updated is _core.H1Carrier.buffer_updated
    assert H1ServerProtocol.get_buffer is _core.H1Carrier.get_buffer


async def test_one_read_dispatches_every_event_in_order_and_writes_once() -> None:
    rec = Recorder()
    proto, tr = await upgraded(rec)
    assert proto.get_buffer(0) is proto._view
    read = (
        client_frame(_core.OP_BINARY, b"one")
        + client_frame(_core.OP_TEXT, "två".encode())
        + client_frame(_core.OP_PING, b"p")
        + client_frame(_core.OP_BINARY, os.urandom(300))
    )
    feed(proto, read)
    assert rec.messages[:2] == [b"one", "två"]
    assert len(rec.messages) == 3
    assert len(tr.writes) == 1  # the echoes and the pong: one write for the read
    assert server_frames(tr.writes[0]) == [
        (_core.OP_BINARY, b"one"),
        (_core.OP_TEXT, "två".encode()),
        (_core.OP_PONG, b"p"),
        (_core.OP_BINARY, rec.messages[2]),
    ]
    assert not proto._dispatching and not proto._wake_batch.active
    assert proto._flush_handle is None


async def test_a_frame_split_across_reads() -> None:
    rec = Recorder()
    proto, tr = await upgraded(rec)
    frame = client_frame(_core.OP_BINARY, b"x" * 200)
    for i in range(len(frame)):
        feed(proto, frame[i : i + 1])
    assert rec.messages == [b"x" * 200]
    assert server_frames(b"".join(tr.writes)) == [(_core.OP_BINARY, b"x" * 200)]


async def test_close_frame_after_messages_in_the_same_read() -> None:
    """RFC 6455 section 5.5.1: the close frame is echoed after the answers
    to the messages before it; then the server closes TCP (section 7.1.1)."""
    rec = Recorder()
    proto, tr = await upgraded(rec)
    close = client_frame(_core.OP_CLOSE, (1000).to_bytes(2, "big") + b"bye")
    feed(proto, client_frame(_core.OP_BINARY, b"a") + close)
    frames = server_frames(b"".join(tr.writes))
    assert frames[0] == (_core.OP_BINARY, b"a")
    assert frames[1][0] == _core.OP_CLOSE
    assert frames[1][1][:2] == (1000).to_bytes(2, "big")
    assert proto._lingering  # FIN sent, the server closes first
    assert rec.lost is not None and rec.lost.code == 1000


async def test_a_raising_callback_propagates_and_resets_the_dispatch() -> None:
    rec = Recorder()
    proto, tr = await upgraded(rec)

    def boom(message: Any) -> None:
        raise RuntimeError("application bug")

    rec.on_message = boom
    with pytest.raises(RuntimeError, match="application bug"):
        feed(proto, client_frame(_core.OP_BINARY, b"a"))
    assert not proto._dispatching and not proto._wake_batch.active
    rec.on_message = None
    feed(proto, client_frame(_core.OP_BINARY, b"b"))
    assert server_frames(b"".join(tr.writes)) == [(_core.OP_BINARY, b"b")]


async def test_a_raising_callback_still_resumes_the_woken_tasks() -> None:
    """A task woken earlier in the read still resumes (as a `finally:` would
    run it) when a later callback raises, and the callback's exception is
    the one that propagates, traceback and all."""
    rec = Recorder()
    proto, tr = await upgraded(rec)
    waiter = proto._wake_batch.waiter()
    task = asyncio.ensure_future(_await(waiter))
    await asyncio.sleep(0)
    seen: list[Any] = []

    def wake_then_boom(message: Any) -> None:
        seen.append(message)
        if len(seen) == 1:
            assert waiter.set_result(message)  # queued on the batch: the read is active
        else:
            raise RuntimeError("application bug")

    rec.on_message = wake_then_boom
    with pytest.raises(RuntimeError, match="application bug") as info:
        feed(proto, client_frame(_core.OP_BINARY, b"a") + client_frame(_core.OP_BINARY, b"b"))
    assert info.traceback[-1].name == "wake_then_boom"
    assert proto._wake_batch.waiters == [] and not proto._wake_batch.active
    assert await asyncio.wait_for(task, 5) == b"a"


async def _await(waiter: Any) -> Any:
    return await waiter


async def test_a_callback_that_drops_the_codec_mid_read() -> None:
    """The read keeps the codec it started with; the flush at its end finds
    none and writes nothing."""
    rec = Recorder()
    proto, tr = await upgraded(rec)
    codec = proto._codec

    def drop(message: Any) -> None:
        proto._codec = None

    rec.on_message = drop
    with pytest.raises(RuntimeError):  # the echo: no codec any more
        feed(proto, client_frame(_core.OP_BINARY, b"a") + client_frame(_core.OP_BINARY, b"b"))
    assert rec.messages == [b"a"]
    proto._codec = codec


async def test_a_send_over_the_write_limit_flushes_at_once() -> None:
    rec = Recorder()
    tr = FakeTransport()
    proto, tr = await upgraded(rec, tr, write_limit=4096)
    ws = rec.transport
    ws.send(b"small")  # outside a read: one flush scheduled for the loop tick
    assert proto._flush_handle is not None and not tr.writes
    tr.buffered = 4000
    ws.send(b"y" * 200)  # 4000 buffered + this frame > 4096: flushed now
    assert proto._flush_handle is None
    assert server_frames(b"".join(tr.writes)) == [
        (_core.OP_BINARY, b"small"),
        (_core.OP_BINARY, b"y" * 200),
    ]


async def test_send_after_close_raises() -> None:
    rec = Recorder()
    proto, tr = await upgraded(rec)
    rec.transport.close(1000, "done")
    with pytest.raises(h2ws.exceptions.InvalidState):
        rec.transport.send(b"late")


async def test_before_the_upgrade_reads_go_to_the_http_parser() -> None:
    rec = Recorder()
    cfg = ServerConfig(ping_interval=None, ping_timeout=None)
    server = Server(
        None, protocol_factory=lambda: rec, subprotocols=None, process_request=None, config=cfg
    )
    proto = H1ServerProtocol(server)
    tr = FakeTransport()
    proto.connection_made(tr)
    for i in range(0, len(UPGRADE), 7):
        assert proto._codec is None
        feed(proto, UPGRADE[i : i + 7])
    for _ in range(3):
        await asyncio.sleep(0)
    assert proto._codec is not None
    assert tr.writes[0].startswith(b"HTTP/1.1 101 ")


async def test_nbytes_beyond_the_read_buffer() -> None:
    rec = Recorder()
    proto, tr = await upgraded(rec)
    with pytest.raises(ValueError):
        proto.buffer_updated(len(proto._view) + 1)
    assert not proto._dispatching


async def test_the_carrier_is_collected() -> None:
    rec = Recorder()
    proto, tr = await upgraded(rec)
    feed(proto, client_frame(_core.OP_BINARY, b"a"))
    ref = weakref.ref(proto)
    proto.connection_lost(None)
    del proto, rec, tr
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()
    assert ref() is None
