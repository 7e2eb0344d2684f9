"""Frame-level servers for the client tests: a server on python-hyper ``h2``
(HTTP/2, RFC 8441) and a raw HTTP/1.1 one (RFC 6455 handshake by hand), both
scriptable per test and recording every client frame with its masking key.

Neither uses h2ws: they are the independent side that checks what the client
puts on the wire.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


@dataclass
class Frame:
    """One client frame as it was on the wire (payload unmasked)."""

    fin: bool
    opcode: int
    masked: bool
    key: bytes | None
    payload: bytes

    @property
    def close_code(self) -> int | None:
        if self.opcode != OP_CLOSE:
            return None
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else 1005


def parse_frames(buf: bytearray) -> list[Frame]:
    """Takes every complete frame off the front of ``buf`` (RFC 6455 section 5.2)."""
    frames = []
    while len(buf) >= 2:
        b0, b1 = buf[0], buf[1]
        masked = bool(b1 & 0x80)
        length = b1 & 0x7F
        offset = 2
        if length == 126:
            if len(buf) < 4:
                break
            length = struct.unpack("!H", buf[2:4])[0]
            offset = 4
        elif length == 127:
            if len(buf) < 10:
                break
            length = struct.unpack("!Q", buf[2:10])[0]
            offset = 10
        key = None
        if masked:
            if len(buf) < offset + 4:
                break
            key = bytes(buf[offset : offset + 4])
            offset += 4
        if len(buf) < offset + length:
            break
        body = bytes(buf[offset : offset + length])
        if key is not None and length:
            stream = (key * (length // 4 + 1))[:length]
            body = (int.from_bytes(body, "big") ^ int.from_bytes(stream, "big")).to_bytes(
                length, "big"
            )
        frames.append(Frame(bool(b0 & 0x80), b0 & 0x0F, masked, key, body))
        del buf[: offset + length]
    return frames


class Assembler:
    """Joins the fragments of a message (RFC 6455 section 5.4)."""

    def __init__(self) -> None:
        self.opcode = 0
        self.parts: list[bytes] = []

    def feed(self, f: Frame) -> tuple[int, bytes] | None:
        """(opcode, payload) once ``f`` completes a message, else None."""
        if f.opcode != OP_CONT:
            self.opcode, self.parts = f.opcode, []
        self.parts.append(f.payload)
        return (self.opcode, b"".join(self.parts)) if f.fin else None


def server_frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """An unmasked server frame."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def close_frame(code: int | None = 1000, reason: bytes = b"") -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason
    return server_frame(OP_CLOSE, payload)


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


class _Listener:
    """What both servers share: a listening socket and their connections."""

    def __init__(self) -> None:
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.changed = asyncio.Event()

    async def _listen(self, factory: Callable[[], asyncio.Protocol]) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(factory, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def _poke(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Waits until ``predicate()`` holds (checked at each server event)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not predicate():
            left = end - loop.time()
            if left <= 0:
                raise TimeoutError("condition not met")
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.05))
            except asyncio.TimeoutError:
                pass

    async def __aenter__(self) -> Any:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for conn in list(getattr(self, "connections", [])):
                if conn.transport is not None:
                    conn.transport.abort()
            await self.server.wait_closed()


# -- HTTP/2 -----------------------------------------------------------------------------


@dataclass
class H2Stream:
    sid: int
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    buf: bytearray = field(default_factory=bytearray)
    frames: list[Frame] = field(default_factory=list)
    # (opcodes of the frames that ended in it, END_STREAM flag) per DATA frame
    data_frames: list[tuple[list[int], bool]] = field(default_factory=list)
    ended: bool = False  # the client's END_STREAM arrived
    reset: int | None = None  # the client's RST_STREAM code
    answered: int | None = None  # our status
    close_sent: bool = False
    end_sent: bool = False
    outbox: bytearray = field(default_factory=bytearray)
    end_queued: bool = False
    done: bool = False  # our END_STREAM went out
    assembler: Assembler = field(default_factory=lambda: Assembler())

    def messages(self) -> list[bytes]:
        return [f.payload for f in self.frames if f.opcode in (OP_TEXT, OP_BINARY)]

    def close_code(self) -> int | None:
        for f in self.frames:
            if f.opcode == OP_CLOSE:
                return f.close_code
        return None


Decision = tuple[int, list[tuple[str, str]], bytes] | None
RequestHook = Callable[["H2ServerConn", H2Stream], "Decision | Awaitable[Decision]"]


class H2ServerConn(asyncio.Protocol):
    def __init__(self, owner: RawH2Server) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(cfg)
        self.streams: dict[int, H2Stream] = {}
        self.events: list[h2.events.Event] = []
        self.goaway_received: h2.events.ConnectionTerminated | None = None
        self.eof = False
        self.peername: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peername = transport.get_extra_info("peername")
        owner = self.owner
        owner.connections.append(self)
        if owner.send_settings:
            initial = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: owner.max_streams}
            if owner.connect_protocol:
                initial[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
            self.h2.local_settings = h2.settings.Settings(client=False, initial_values=initial)
            self.h2.initiate_connection()
            self.flush()
        owner._poke()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if not owner.send_settings:
            return  # a server that never speaks
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            assert self.transport is not None
            self.transport.close()
            return
        for ev in events:
            self.events.append(ev)
            if isinstance(ev, h2.events.RequestReceived):
                raw = [(str(k), str(v)) for k, v in ev.headers]
                st = H2Stream(ev.stream_id, dict(raw), raw)
                self.streams[ev.stream_id] = st
                asyncio.ensure_future(self._answer(st))
            elif isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                st = self.streams[ev.stream_id]
                st.buf += ev.data
                frames = parse_frames(st.buf)
                st.frames += frames
                st.data_frames.append(([f.opcode for f in frames], ev.stream_ended is not None))
                for f in frames:
                    self._on_frame(st, f)
            elif isinstance(ev, h2.events.StreamEnded):
                st = self.streams[ev.stream_id]
                st.ended = True
                if owner.end_after_client and st.close_sent and not st.end_sent:
                    self.end(st)
            elif isinstance(ev, h2.events.StreamReset):
                if ev.stream_id in self.streams:
                    self.streams[ev.stream_id].reset = int(ev.error_code)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway_received = ev
        self.pump()
        owner._poke()

    def _on_frame(self, st: H2Stream, f: Frame) -> None:
        owner = self.owner
        if f.opcode == OP_PING and owner.auto_pong:
            self.send(st, server_frame(OP_PONG, f.payload))
        elif f.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            message = st.assembler.feed(f)
            if message is not None and owner.echo and not st.close_sent:
                self.send(st, server_frame(*message))
        elif f.opcode == OP_CLOSE and owner.answer_close and not st.close_sent:
            st.close_sent = True
            code = f.close_code
            self.send(st, close_frame(None if code == 1005 else code), end=owner.end_with_close)

    async def _answer(self, st: H2Stream) -> None:
        decision = self.owner.on_request(self, st)
        if isinstance(decision, Awaitable):
            decision = await decision
        if decision is None:
            return  # never answered
        status, headers, body = decision
        st.answered = status
        end = (status != 200 and not body) or self.owner.end_200
        self.h2.send_headers(st.sid, [(":status", str(status)), *headers], end_stream=end)
        st.end_sent = st.done = end
        if status != 200 and body:
            self.h2.send_data(st.sid, body, end_stream=True)
        self.flush()
        self.owner._poke()

    def send(self, st: H2Stream, data: bytes, end: bool = False) -> None:
        """Queues DATA (sent within the windows and the frame size limit)."""
        st.outbox += data
        if end:
            st.end_queued = True
            st.end_sent = True
        self.pump()

    def end(self, st: H2Stream) -> None:
        self.send(st, b"", end=True)

    def pump(self) -> None:
        for st in self.streams.values():
            if st.reset is not None or st.done:
                continue
            while st.outbox:
                window = min(
                    self.h2.local_flow_control_window(st.sid), self.h2.max_outbound_frame_size
                )
                if window <= 0:
                    break
                chunk = bytes(st.outbox[:window])
                del st.outbox[:window]
                last = st.end_queued and not st.outbox
                self.h2.send_data(st.sid, chunk, end_stream=last)
                st.done = last
            if st.end_queued and not st.outbox and not st.done:
                self.h2.end_stream(st.sid)
                st.done = True
        self.flush()

    def goaway(self, last_stream_id: int | None = None) -> None:
        self.h2.close_connection(last_stream_id=last_stream_id)
        self.flush()

    def eof_received(self) -> bool | None:
        self.eof = True
        self.owner._poke()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.owner._poke()


def websocket_ok(conn: H2ServerConn, st: H2Stream) -> Decision:
    if st.headers.get(":protocol") != "websocket":
        return (400, [], b"not a websocket\n")
    return (200, [], b"")


class RawH2Server(_Listener):
    """An HTTP/2 server on python-hyper h2.

    ``on_request(conn, stream)`` returns ``(status, headers, body)`` (200 opens
    the tunnel) or None to never answer; it may be async. Options: whether
    SETTINGS advertise RFC 8441 (``connect_protocol``) or are sent at all
    (``send_settings``), ``max_streams``, ``echo`` messages, ``auto_pong``,
    ``answer_close`` (echo the client's close frame), ``end_with_close``
    (END_STREAM on that answer), ``end_after_client`` (END_STREAM once the
    client's END_STREAM arrived, when the close went out without it) and
    ``end_200`` (a 200 in HEADERS with END_STREAM: no tunnel).
    """

    def __init__(
        self,
        on_request: RequestHook = websocket_ok,
        *,
        connect_protocol: bool = True,
        send_settings: bool = True,
        max_streams: int = 100,
        echo: bool = True,
        auto_pong: bool = True,
        answer_close: bool = True,
        end_with_close: bool = True,
        end_after_client: bool = True,
        end_200: bool = False,
    ) -> None:
        super().__init__()
        self.end_200 = end_200
        self.on_request = on_request
        self.connect_protocol = connect_protocol
        self.send_settings = send_settings
        self.max_streams = max_streams
        self.echo = echo
        self.auto_pong = auto_pong
        self.answer_close = answer_close
        self.end_with_close = end_with_close
        self.end_after_client = end_after_client
        self.connections: list[H2ServerConn] = []

    async def start(self) -> None:
        await self._listen(lambda: H2ServerConn(self))

    def streams(self) -> list[H2Stream]:
        return [st for c in self.connections for st in c.streams.values()]

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


# -- HTTP/1.1 -----------------------------------------------------------------------------


@dataclass
class H1Request:
    line: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


H1Hook = Callable[[H1Request], "bytes | None"]


def switching(request: H1Request, extra: str = "", accept: str | None = None) -> bytes:
    """A correct 101 answer, plus ``extra`` header lines."""
    key = request.get("sec-websocket-key") or ""
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept if accept is not None else accept_key(key)}\r\n"
        f"{extra}\r\n"
    ).encode()


class H1ServerConn(asyncio.Protocol):
    def __init__(self, owner: RawH1Server) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.request: H1Request | None = None
        self.upgraded = False
        self.buf = bytearray()
        self.frames: list[Frame] = []
        self.assembler = Assembler()
        self.eof = False
        self.close_sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.owner.connections.append(self)
        self.owner._poke()

    def data_received(self, data: bytes) -> None:
        if self.request is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.head[:end].decode("latin-1").split("\r\n")
            headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
            self.request = H1Request(lines[0], headers)  # type: ignore[arg-type]
            rest = bytes(self.head[end + 4 :])
            answer = self.owner.on_request(self.request)
            if answer is not None:
                assert self.transport is not None
                self.transport.write(answer)
                self.upgraded = answer.startswith(b"HTTP/1.1 101")
            data = rest
        if self.upgraded and data:
            self.buf += data
            for f in parse_frames(self.buf):
                self.frames.append(f)
                self._on_frame(f)
        self.owner._poke()

    def _on_frame(self, f: Frame) -> None:
        owner = self.owner
        assert self.transport is not None
        if f.opcode == OP_PING and owner.auto_pong:
            self.transport.write(server_frame(OP_PONG, f.payload))
        elif f.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            message = self.assembler.feed(f)
            if message is not None and owner.echo and not self.close_sent:
                self.transport.write(server_frame(*message))
        elif f.opcode == OP_CLOSE and not self.close_sent:
            self.close_sent = True
            code = f.close_code
            self.transport.write(close_frame(None if code == 1005 else code))
            self.transport.close()  # the server closes TCP first (RFC 6455 section 7.1.1)

    def messages(self) -> list[bytes]:
        return [f.payload for f in self.frames if f.opcode in (OP_TEXT, OP_BINARY)]

    def close_code(self) -> int | None:
        for f in self.frames:
            if f.opcode == OP_CLOSE:
                return f.close_code
        return None

    def eof_received(self) -> bool | None:
        self.eof = True
        self.owner._poke()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.owner._poke()


class RawH1Server(_Listener):
    """An HTTP/1.1 server: ``on_request(request)`` returns the bytes of the
    answer (a 101 goes on to WebSocket frames) or None to never answer."""

    def __init__(
        self, on_request: H1Hook = switching, *, echo: bool = True, auto_pong: bool = True
    ) -> None:
        super().__init__()
        self.on_request = on_request
        self.echo = echo
        self.auto_pong = auto_pong
        self.connections: list[H1ServerConn] = []

    async def start(self) -> None:
        await self._listen(lambda: H1ServerConn(self))

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}"
