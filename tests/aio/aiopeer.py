"""A flow-control-aware peer for the asyncio tests, on ``helpers.servers.H2Client``.

What it adds to the frame-level client:

- ``queue(sid, data)`` + ``pump()``: bytes wait in a per-stream outbox and go
  out only as far as the stream and connection windows and the server's
  SETTINGS_MAX_FRAME_SIZE allow, so a stream whose window the server keeps
  shut simply stops sending (h2 raises on any attempt to overshoot);
- ``slow``: streams whose received data is not acknowledged (their stream
  window stays used up; the connection window is still returned, as a real
  client's would be), ``release(sid)`` acknowledges what they hold;
- ``auto_pong``: answer the server's pings (the codec never does on its own);
- ``record_raw``: keep the raw DATA payload of some streams, to look at the
  WebSocket frames themselves;
- per-stream counts of received DATA bytes and the largest DATA frame, and
  where in ``events`` each stream's close frame arrived (``close_at``);
- ``survive_goaway``: go on after a GOAWAY, as RFC 9113 section 6.8 lets a
  client finish the streams the GOAWAY covers (h2 itself treats any GOAWAY
  as the end: it refuses every later frame).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import h2.connection
import h2.events
import h2.exceptions
from helpers.refcodec import parse_header
from helpers.servers import H2Client, ws_request_headers

from h2ws import _core


class Peer(H2Client):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.auto_ack = False  # read() below acknowledges by its own rules
        self.slow: set[int] = set()
        self.unacked: dict[int, int] = {}
        self.auto_pong = False
        self.record_raw: set[int] = set()
        self.raw: dict[int, bytearray] = {}
        self.outbox: dict[int, bytearray] = {}
        self.end_after: set[int] = set()
        self.received: dict[int, int] = {}
        self.largest_frame: dict[int, int] = {}
        self.close_at: dict[int, int] = {}
        self.survive_goaway = False

    # -- input ----------------------------------------------------------------

    async def read(self, timeout: float = 5.0) -> list[h2.events.Event]:
        data = await asyncio.wait_for(self.reader.read(1 << 20), timeout)
        if not data:
            return []
        events = self.receive(data)
        conn_credit = 0
        base = len(self.events)
        for index, ev in enumerate(events, base):
            if isinstance(ev, h2.events.DataReceived):
                sid, n = ev.stream_id, ev.flow_controlled_length
                self.received[sid] = self.received.get(sid, 0) + n
                self.largest_frame[sid] = max(self.largest_frame.get(sid, 0), n)
                if sid in self.record_raw:
                    self.raw.setdefault(sid, bytearray()).extend(ev.data)
                if sid in self.slow:
                    self.unacked[sid] = self.unacked.get(sid, 0) + n
                    conn_credit += n
                elif n:
                    self.conn.acknowledge_received_data(n, sid)
                codec = self.codecs.get(sid)
                if codec is not None and ev.data:
                    wevs = codec.receive_data(ev.data)
                    self.ws_events.setdefault(sid, []).extend(wevs)
                    if sid not in self.close_at and any(w[0] == _core.EV_CLOSE for w in wevs):
                        self.close_at[sid] = index
                    if self.auto_pong:
                        for w in wevs:
                            if w[0] == _core.EV_PING and not codec.close_sent:
                                codec.pong(w[1])
                                self.queue(sid, codec.data_to_send())
        if conn_credit:
            self.conn.increment_flow_control_window(conn_credit)
        self.events.extend(events)
        self.pump()
        return events

    async def until(self, predicate: Any, timeout: float = 5.0) -> None:
        """Reads until predicate(self) is true; also notices conditions that
        change without a read (server-side state), checking every 20 ms."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not predicate(self):
            left = end - loop.time()
            if left <= 0:
                raise TimeoutError("condition not met")
            try:
                events = await self.read(min(left, 0.02))
            except (asyncio.TimeoutError, TimeoutError):
                continue
            if not events and self.reader.at_eof() and not predicate(self):
                raise ConnectionError("connection closed")

    def receive(self, data: bytes) -> list[h2.events.Event]:
        if not self.survive_goaway:
            return self.conn.receive_data(data)
        # Feed frame by frame, reopening h2's state machine after each GOAWAY.
        events: list[h2.events.Event] = []
        self._partial = getattr(self, "_partial", b"") + data
        buf = self._partial
        pos = 0
        while len(buf) - pos >= 9:
            length = int.from_bytes(buf[pos:pos + 3], "big")
            if len(buf) - pos < 9 + length:
                break
            evs = self.conn.receive_data(buf[pos:pos + 9 + length])
            pos += 9 + length
            events.extend(evs)
            if any(isinstance(e, h2.events.ConnectionTerminated) for e in evs):
                self.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        self._partial = buf[pos:]
        return events

    def release(self, sid: int) -> None:
        """Stops being slow on `sid`: acknowledges everything it holds."""
        self.slow.discard(sid)
        n = self.unacked.pop(sid, 0)
        if n and sid in self.conn.streams:
            # Only the stream window: the connection's was returned already.
            self.conn.increment_flow_control_window(n, stream_id=sid)
        self.flush()

    # -- output ---------------------------------------------------------------

    def queue(self, sid: int, data: bytes, end_stream: bool = False) -> None:
        self.outbox.setdefault(sid, bytearray()).extend(data)
        if end_stream:
            self.end_after.add(sid)
        self.pump()

    def queue_message(self, sid: int, message: str | bytes, end_stream: bool = False) -> None:
        codec = self.codecs[sid]
        codec.send(message)
        self.queue(sid, codec.data_to_send(), end_stream)

    def queue_close(self, sid: int, code: int | None = 1000, reason: str = "",
                    end_stream: bool = True) -> None:
        codec = self.codecs[sid]
        codec.close(code, reason)
        self.queue(sid, codec.data_to_send(), end_stream)

    def pending(self, sid: int) -> int:
        return len(self.outbox.get(sid, b""))

    def pump(self) -> None:
        """Sends what the windows allow, one DATA frame at a time."""
        conn = self.conn
        for sid in list(self.outbox):
            box = self.outbox[sid]
            try:
                sent_end = False
                while box:
                    room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                    if room <= 0:
                        break
                    chunk = bytes(box[:room])
                    del box[:room]
                    sent_end = not box and sid in self.end_after
                    conn.send_data(sid, chunk, end_stream=sent_end)
                if not box and sid in self.end_after and not sent_end:
                    conn.end_stream(sid)
            except (h2.exceptions.NoSuchStreamError, KeyError):
                box.clear()  # the stream is gone: nothing more to send on it
            if not box:
                del self.outbox[sid]
                self.end_after.discard(sid)
        self.flush()

    async def open_websocket(self, path: str = "/", *, codec: Any = None, **kw: Any) -> int:
        """Extended CONNECT; waits for the 200. The stream's codec exists before
        the response arrives, so DATA in the same read as the 200 is not lost."""
        await self.wait_settings()
        sid = self.request(ws_request_headers(path, **kw))
        self.codecs[sid] = codec if codec is not None else _core.WebSocketCodec(client=True)
        await self.until(lambda c: c.response(sid) is not None or c.reset_code(sid) is not None)
        assert self.status(sid) == 200, (self.status(sid), self.reset_code(sid))
        return sid

    # -- looking at what arrived ----------------------------------------------

    def window_updates(self, sid: int) -> int:
        return sum(1 for e in self.events
                   if isinstance(e, h2.events.WindowUpdated) and e.stream_id == sid)

    def close_event(self, sid: int) -> tuple[Any, ...] | None:
        for w in self.messages(sid):
            if w[0] == _core.EV_CLOSE:
                return w
        return None

    def data_messages(self, sid: int) -> list[str | bytes]:
        return [w[1] for w in self.messages(sid) if w[0] in (_core.EV_TEXT, _core.EV_BINARY)]

    def count(self, sid: int, kind: int) -> int:
        return sum(1 for w in self.messages(sid) if w[0] == kind)

    def index_of(self, predicate: Any, start: int = 0) -> int | None:
        """Index in ``events`` of the first event from `start` that matches."""
        for i in range(start, len(self.events)):
            if predicate(self.events[i]):
                return i
        return None


def frames(data: bytes | bytearray) -> Iterator[tuple[bool, int, bytes]]:
    """(fin, opcode, payload) of each complete server frame in `data`."""
    pos = 0
    while True:
        h = parse_header(bytes(data[pos:pos + 14]))
        if h is None or pos + h.size + h.length > len(data):
            return
        assert not h.masked, "server frames are never masked (RFC 6455 section 5.1)"
        start = pos + h.size
        yield h.fin, h.opcode, bytes(data[start:start + h.length])
        pos = start + h.length


async def connect(port: int, *, survive_goaway: bool = False, **kw: Any) -> Peer:
    """A Peer on 127.0.0.1:`port` (``survive_goaway`` is fixed before any read)."""
    client = await Peer.connect("127.0.0.1", port, **kw)
    assert isinstance(client, Peer)
    client.survive_goaway = survive_goaway
    return client
