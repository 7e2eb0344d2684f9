"""WebSocket streams as asyncio-style transport/protocol pairs, and the
``WebSocket`` object handlers talk to.

Two levels, as with asyncio's own transports:

- ``WebSocketTransport`` drives a ``WebSocketProtocol`` with callbacks, with no
  Future per message: the fast path;
- ``WebSocket`` is such a protocol, with the API users of the ``websockets``
  library know: ``await recv()``, ``await send()``, ``async for``,
  ``await ping()``, ``await close()``.

The same classes serve HTTP/2 streams (RFC 8441) and HTTP/1.1 connections.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable
from typing import Any, Protocol

from . import _core
from .exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, InvalidState
from .http import Request, Response

__all__ = ["WebSocketProtocol", "WebSocketTransport", "WebSocket", "Data", "WakeBatch"]

Data = str | bytes

logger = logging.getLogger("h2ws.websocket")

_OK_CODES = (1000, 1001, 1005)

#: Messages a paused transport holds before it asks its carrier to stop
#: reading too (over HTTP/1.1: pause the socket; over HTTP/2 the stream's
#: window already stops the peer).
HOLD_LIMIT = 16


#: The recv() waiters resolved while a carrier dispatches the events of one
#: read (C, csrc/py/connection.c). A carrier sets ``active`` around its
#: dispatch and calls ``run()`` after it, from an event-loop callback (never
#: from a task): the handlers' tasks resume at once, with no asyncio.Future
#: and no ``call_soon`` handle per message, and what they send goes out in
#: the write that ends the read. Outside a dispatch a waiter resumes its
#: task with ``loop.call_soon``, as a Future would.
WakeBatch = _core.WakeBatch

#: An awaitable that returns its value at once (no coroutine): what
#: __anext__() returns when a message was already there.
_completed = _core.Waiter.completed


class _Carrier(Protocol):
    """What a transport needs from the connection that carries it."""

    def _ws_send(self, sid: int, message: Data | bytearray | memoryview) -> bool: ...
    def _ws_send_frame(self, sid: int, opcode: int, payload: bytes, fin: bool) -> bool: ...
    def _ws_close(self, sid: int, code: int | None, reason: str) -> None: ...
    def _ws_abort(self, sid: int) -> None: ...
    def _ws_consume(self, sid: int, credit: int) -> None: ...
    def _ws_extra_info(self, name: str, default: Any) -> Any: ...
    def _ws_write_paused(self) -> bool: ...
    def _ws_pause_reading(self, sid: int, paused: bool) -> None: ...


class WebSocketProtocol:
    """Callbacks of one WebSocket, in the style of ``asyncio.Protocol``.

    Subclass it and give it to ``serve(protocol_factory=...)`` for the fast,
    callback-based path; the default, ``WebSocket``, is one such subclass.
    """

    def connection_made(self, transport: WebSocketTransport) -> None:
        """The WebSocket is open; ``transport`` sends on it."""

    def message_received(self, message: Data) -> None:
        """A complete message arrived: ``str`` for text, ``bytes`` for binary."""

    def pong_received(self, payload: bytes) -> None:
        """A pong arrived (an answer to ``transport.ping()``, or unsolicited)."""

    def connection_lost(self, exc: ConnectionClosed) -> None:
        """The WebSocket is closed; ``exc.code``/``exc.reason`` tell how
        (1006 when it ended without a close frame)."""

    def pause_writing(self) -> None:
        """The transport's send buffer is over its limit: stop sending."""

    def resume_writing(self) -> None:
        """The send buffer drained: sending may go on."""


class WebSocketTransport:
    """One open WebSocket: an HTTP/2 stream or an upgraded HTTP/1.1 connection.

    Messages reach the protocol's ``message_received`` in order. While reading
    is paused (``pause_reading``), messages wait in the transport and the
    peer's flow-control credit for them is not returned: over HTTP/2 the
    stream's window closes and that stream alone stalls.
    """

    # One per WebSocket: no instance dict (about 40 bytes less each).
    __slots__ = (
        "_carrier",
        "_sid",
        "request",
        "subprotocol",
        "http_version",
        "response",
        "_loop",
        "_protocol",
        "_close_timeout",
        "_ping_interval",
        "_ping_timeout",
        "_reading_paused",
        "_carrier_paused",
        "_held_q",
        "_held_credit",
        "_wake_batch",
        "_writing_paused",
        "_closing",
        "_closed",
        "_ended",
        "_rcvd",
        "_sent",
        "_failed",
        "closed_locally",
        "_close_timer",
        "_ping_timer",
        "_keepalive_payload",
        "__weakref__",
    )

    def __init__(
        self,
        carrier: _Carrier,
        stream_id: int,
        request: Request,
        subprotocol: str | None,
        http_version: str,
        *,
        loop: asyncio.AbstractEventLoop,
        close_timeout: float = 10.0,
        ping_interval: float | None = None,
        ping_timeout: float | None = None,
    ) -> None:
        self._carrier = carrier
        self._sid = stream_id
        self.request = request
        self.subprotocol = subprotocol
        self.http_version = http_version
        #: Client side: the server's answer to the opening handshake.
        self.response: Response | None = None
        self._loop = loop
        self._protocol: WebSocketProtocol = WebSocketProtocol()
        self._close_timeout = close_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._reading_paused = False
        self._carrier_paused = False
        # Messages held while reading is paused: created when first needed
        # (an empty deque costs ~600 bytes, and most streams never hold one).
        self._held_q: collections.deque[tuple[Data, int]] | None = None
        self._held_credit = 0
        #: Set by carriers that resume recv() waiters after each dispatch.
        self._wake_batch: WakeBatch | None = None
        self._writing_paused = False
        self._closing = False  # our close frame went out (or we failed the stream)
        self._closed: ConnectionClosed | None = None  # reported to the protocol
        self._ended = False  # the stream or connection is gone
        self._rcvd: tuple[int, str] | None = None
        self._sent: tuple[int, str] | None = None
        self._failed = False
        #: True when this side started the closing handshake (close() before
        #: the peer's close frame came) or failed the WebSocket.
        self.closed_locally = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._keepalive_payload: bytes | None = None

    # -- the transport API ---------------------------------------------------

    def set_protocol(self, protocol: WebSocketProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> WebSocketProtocol:
        return self._protocol

    @property
    def stream_id(self) -> int:
        """The HTTP/2 stream id (0 over HTTP/1.1)."""
        return self._sid

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``request``, ``subprotocol``, ``http_version``, ``stream_id``, or any
        key of the underlying socket transport (``peername``, ``sslcontext``...)."""
        if name == "request":
            return self.request
        if name == "response":
            return self.response
        if name == "subprotocol":
            return self.subprotocol
        if name == "http_version":
            return self.http_version
        if name == "stream_id":
            return self._sid
        return self._carrier._ws_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._closing or self._closed is not None

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed
        if self._closing:
            raise InvalidState("the WebSocket is closing")

    def send(self, message: Data | bytearray | memoryview) -> None:
        """Queues a message: ``str`` as text, bytes-like as binary.

        Raises ``ConnectionClosed`` once closed, ``InvalidState`` while closing.
        """
        if self._closing or self._closed is not None:
            self._check_open()  # raises
        if self._carrier._ws_send(self._sid, message):
            self._set_writing_paused()

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        """Queues one frame, for fragmented messages (``OP_TEXT``/``OP_BINARY``
        with ``fin=False``, then ``OP_CONT``)."""
        self._check_open()
        if self._carrier._ws_send_frame(self._sid, opcode, payload, fin):
            self._set_writing_paused()

    def ping(self, payload: bytes = b"") -> None:
        """Sends a ping; its pong reaches ``pong_received``."""
        self.send_frame(_core.OP_PING, payload)

    def pong(self, payload: bytes = b"") -> None:
        """Sends an unsolicited pong (pings are answered automatically)."""
        self.send_frame(_core.OP_PONG, payload)

    def close(self, code: int | None = 1000, reason: str = "") -> None:
        """Starts the closing handshake (RFC 6455 §7.1.2); idempotent.

        The connection is reset if the peer has not finished it within the
        close timeout. ``code=None`` sends a close frame without a code.
        """
        if self._closing or self._closed is not None:
            return
        self._closing = True
        self.closed_locally = True
        self._sent = (code if code is not None else 1005, reason)
        self._carrier._ws_close(self._sid, code, reason)
        self._start_close_timer()

    def abort(self) -> None:
        """Ends the WebSocket at once (RST_STREAM CANCEL over HTTP/2)."""
        if not self._ended:
            self._carrier._ws_abort(self._sid)

    def pause_reading(self) -> None:
        """Stops delivering messages; their flow-control credit is held."""
        self._reading_paused = True

    def resume_reading(self) -> None:
        """Delivers held messages and returns the credit of those taken."""
        if not self._reading_paused:
            return
        self._reading_paused = False
        credit = self._held_credit
        if credit:
            self._held_credit = 0
            self._carrier._ws_consume(self._sid, credit)
        held = self._held_q
        if not held and not self._carrier_paused:
            return  # the hot path: nothing was held back
        while held and not self._reading_paused:
            message, credit = held.popleft()
            self._deliver(message, credit)
        if self._carrier_paused and (held is None or len(held) < HOLD_LIMIT):
            self._carrier_paused = False
            self._carrier._ws_pause_reading(self._sid, False)

    def is_reading(self) -> bool:
        return not self._reading_paused

    def get_write_buffer_size(self) -> int:
        size = self._carrier._ws_extra_info("_buffered", None)
        return int(size(self._sid)) if callable(size) else 0

    @property
    def _held(self) -> collections.deque[tuple[Data, int]]:
        """The messages held while reading is paused (a fresh empty deque if none)."""
        return self._held_q if self._held_q is not None else collections.deque()

    # -- called by the carrier ------------------------------------------------

    def _deliver(self, message: Data, credit: int) -> None:
        self._protocol.message_received(message)
        if self._reading_paused:
            self._held_credit += credit
        else:
            self._carrier._ws_consume(self._sid, credit)

    def _on_message(self, message: Data, credit: int) -> None:
        if self._reading_paused:
            held = self._held_q
            if held is None:
                held = self._held_q = collections.deque()
            held.append((message, credit))
            if len(held) >= HOLD_LIMIT and not self._carrier_paused:
                self._carrier_paused = True
                self._carrier._ws_pause_reading(self._sid, True)
        else:
            self._deliver(message, credit)

    def _on_pong(self, payload: bytes) -> None:
        if self._keepalive_payload is not None and payload == self._keepalive_payload:
            self._keepalive_payload = None
        self._protocol.pong_received(payload)

    def _on_peer_close(self, code: int, reason: str) -> None:
        self._rcvd = (code, reason)
        if not self._closing:
            self._closing = True  # the carrier echoed the close frame
            self._sent = (code, "")
        self._start_close_timer()

    def _on_failed(self, code: int, reason: str) -> None:
        logger.debug("stream %s: closing with %s: %s", self._sid, code, reason)
        self._failed = True
        self.closed_locally = True
        self._closing = True
        self._sent = (code, reason)
        self._start_close_timer()
        # RFC 6455 section 7.1.7: the WebSocket is failed now; the application
        # learns it at once, while the stream itself may linger until the
        # peer ends it (or the close timer resets it).
        self._report_closed()

    def _on_resume_writing(self) -> None:
        if self._writing_paused:
            self._writing_paused = False
            self._protocol.resume_writing()

    def _set_writing_paused(self) -> None:
        if not self._writing_paused:
            self._writing_paused = True
            self._protocol.pause_writing()

    def _start_close_timer(self) -> None:
        if self._close_timer is None and not self._ended:
            self._close_timer = self._loop.call_later(self._close_timeout, self.abort)

    def _start_keepalive(self) -> None:
        if self._ping_interval:
            self._ping_timer = self._loop.call_later(self._ping_interval, self._keepalive)

    def _keepalive(self) -> None:
        self._ping_timer = None
        if self.is_closing():
            return
        if self._keepalive_payload is not None:
            # The previous keepalive ping was never answered.
            self._fail_keepalive()
            return
        payload = os.urandom(4)
        self._keepalive_payload = payload
        self.ping(payload)
        if self._ping_timeout is not None and (
            self._ping_interval is None or self._ping_timeout < self._ping_interval
        ):
            self._ping_timer = self._loop.call_later(self._ping_timeout, self._check_pong, payload)
        else:
            self._start_keepalive()

    def _check_pong(self, payload: bytes) -> None:
        self._ping_timer = None
        if self._keepalive_payload == payload:
            self._fail_keepalive()
        else:
            self._start_keepalive()

    def _fail_keepalive(self) -> None:
        logger.debug("stream %s: keepalive ping timeout", self._sid)
        if not self.is_closing():
            self.close(1011, "keepalive ping timeout")

    def _on_ended(self) -> None:
        """The stream (or connection) is gone: report how it closed."""
        if self._ended:
            return
        self._ended = True
        for timer in (self._close_timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        self._close_timer = self._ping_timer = None
        self._report_closed()

    def _report_closed(self) -> None:
        if self._closed is not None:
            return
        exc: ConnectionClosed
        if self._rcvd is not None and not self._failed:
            code, reason = self._rcvd
            sent_ok = self._sent is None or self._sent[0] in _OK_CODES
            cls = ConnectionClosedOK if code in _OK_CODES and sent_ok else ConnectionClosedError
            exc = cls(code, reason)
        elif self._failed and self._sent is not None:
            exc = ConnectionClosedError(self._sent[0], self._sent[1], received=False)
        else:
            exc = ConnectionClosedError(1006, "", received=False)
        self._closed = exc
        self._protocol.connection_lost(exc)  # WebSocket keeps what is held
        self._held_q = None


class WebSocket(WebSocketProtocol):
    """A WebSocket as handlers see it, over HTTP/2 or HTTP/1.1.

    ``recv()`` returns the next message; while a message waits unread the
    stream's flow-control credit for the next ones is held, so a slow reader
    stalls only its own stream.
    """

    def __init__(self) -> None:
        self._transport: WebSocketTransport | None = None
        # Created with the first message (an idle WebSocket holds no deque).
        self._msgs: collections.deque[Data] | None = None
        self._recv_waiter: _core.Waiter | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed_exc: ConnectionClosed | None = None
        self._closed_future: asyncio.Future[None] | None = None  # made by wait_closed()
        # Pings waiting for their pong: created by the first ping().
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] | None = None
        self._write_paused = False

    # -- protocol callbacks ---------------------------------------------------

    def connection_made(self, transport: WebSocketTransport) -> None:
        self._transport = transport

    def message_received(self, message: Data) -> None:
        # The hot path: a waiting recv() or __anext__() gets the message
        # itself, and reading goes on (its credit returns now).
        waiter = self._recv_waiter
        if waiter is not None:
            self._recv_waiter = None
            if waiter.set_result(message):
                return
        messages = self._msgs
        if messages is None:
            messages = self._msgs = collections.deque()
        messages.append(message)
        transport = self._transport
        assert transport is not None
        transport._reading_paused = True  # credit returns when recv() takes it

    def _unreceive(self, message: Data) -> None:
        """A waiter's task was cancelled before it took `message` (called by
        the Waiter): the next recv() returns it."""
        if self._msgs is None:
            self._msgs = collections.deque()
        self._msgs.appendleft(message)

    def pong_received(self, payload: bytes) -> None:
        pings = self._pings
        if not pings or payload not in pings:
            return
        now = time.monotonic()
        # A pong acknowledges its ping and every earlier one (RFC 6455 §5.5.3).
        for key in list(pings):
            fut, sent = pings.pop(key)
            if not fut.done():
                fut.set_result(now - sent)
            if key == payload:
                break

    def connection_lost(self, exc: ConnectionClosed) -> None:
        self._closed_exc = exc
        if self._transport is not None:
            # Messages that arrived before the end are still returned by
            # recv() before it raises.
            held = self._transport._held_q
            if held:
                if self._msgs is None:
                    self._msgs = collections.deque()
                self._msgs.extend(m for m, _ in held)
        waiter = self._recv_waiter
        if waiter is not None:
            self._recv_waiter = None
            if self._msgs:
                # Held messages come first (none is, unless reading was paused).
                if waiter.set_result(self._msgs[0]):
                    self._msgs.popleft()
            elif waiter.iterating and isinstance(exc, ConnectionClosedOK):
                waiter.set_exception(StopAsyncIteration())
            else:
                waiter.set_exception(exc)
        for fut in (self._drain_waiter, self._closed_future):
            if fut is not None and not fut.done():
                fut.set_result(None)
        pings = self._pings
        if pings:
            for ping, _ in pings.values():
                if not ping.done():
                    ping.set_exception(exc)
                    ping.exception()  # retrieved: nobody has to await it
            pings.clear()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def _messages(self) -> collections.deque[Data]:
        """The messages received and not yet returned by recv()."""
        return self._msgs if self._msgs is not None else collections.deque()

    # -- the API --------------------------------------------------------------

    @property
    def transport(self) -> WebSocketTransport:
        assert self._transport is not None
        return self._transport

    @property
    def request(self) -> Request:
        """The request that opened the WebSocket (``.path``, ``.headers``)."""
        return self.transport.request

    @property
    def response(self) -> Response | None:
        """Client side: the server's answer (status, headers); None on a server."""
        return self.transport.response

    @property
    def subprotocol(self) -> str | None:
        return self.transport.subprotocol

    @property
    def http_version(self) -> str:
        """``"2"`` for a WebSocket over HTTP/2 (RFC 8441), ``"1.1"`` otherwise."""
        return self.transport.http_version

    @property
    def stream_id(self) -> int:
        return self.transport.stream_id

    @property
    def remote_address(self) -> Any:
        return self.transport.get_extra_info("peername")

    @property
    def local_address(self) -> Any:
        return self.transport.get_extra_info("sockname")

    @property
    def close_code(self) -> int | None:
        """The close code once closed (1006 without a close frame), else None."""
        return self._closed_exc.code if self._closed_exc is not None else None

    @property
    def close_reason(self) -> str | None:
        return self._closed_exc.reason if self._closed_exc is not None else None

    @property
    def closed(self) -> bool:
        return self._closed_exc is not None

    async def recv(self) -> Data:
        """Returns the next message: ``str`` (text) or ``bytes`` (binary).

        Raises ``ConnectionClosedOK`` after a clean close, ``ConnectionClosedError``
        otherwise, once every message that arrived before it was returned.
        """
        messages = self._msgs
        if not messages:
            if self._closed_exc is not None:
                raise self._closed_exc
            # The message (or the exception) comes straight in the waiter.
            return await self._waiter(False)  # type: ignore[no-any-return]
        message = messages.popleft()
        if not messages:
            transport = self._transport
            if transport is not None and transport._reading_paused:
                transport.resume_reading()
        return message

    def _waiter(self, iterating: bool) -> _core.Waiter:
        transport = self._transport
        assert transport is not None
        batch = transport._wake_batch
        if batch is None:
            batch = transport._wake_batch = WakeBatch(transport._loop)
        waiter = self._recv_waiter = batch.waiter(self, iterating)
        return waiter

    def __aiter__(self) -> AsyncIterator[Data]:
        return self

    def __anext__(self) -> Awaitable[Data]:
        # No coroutine per message: an awaitable that returns the message
        # at once, or the waiter message_received() hands it to;
        # ConnectionClosedOK ends the iteration.
        messages = self._msgs
        if not messages:
            exc = self._closed_exc
            if exc is not None:
                if isinstance(exc, ConnectionClosedOK):
                    raise StopAsyncIteration
                raise exc
            transport = self._transport
            assert transport is not None
            batch = transport._wake_batch
            if batch is None:
                batch = transport._wake_batch = WakeBatch(transport._loop)
            waiter = self._recv_waiter = batch.waiter(self, True)
            return waiter
        message = messages.popleft()
        if not messages:
            transport = self._transport
            if transport is not None and transport._reading_paused:
                # resume_reading() inlined for the usual case: nothing held.
                if transport._held_q or transport._carrier_paused:
                    transport.resume_reading()
                else:
                    transport._reading_paused = False
                    credit = transport._held_credit
                    if credit:
                        transport._held_credit = 0
                        transport._carrier._ws_consume(transport._sid, credit)
        return _completed(message)

    async def send(
        self, message: Data | bytearray | memoryview | Iterable[Data] | AsyncIterable[Data]
    ) -> None:
        """Sends a message (``str`` as text, bytes-like as binary), or the
        fragments of one message from an iterable or async iterable.

        Waits while the send buffer is over its limit. Raises ``ConnectionClosed``
        once the WebSocket is closed (while it is closing: when the closing
        handshake ends).
        """
        transport = self._transport
        assert transport is not None
        cls = type(message)
        if (
            (cls is bytes or cls is str)
            and self._closed_exc is None
            and not transport._closing
            and transport._closed is None
        ):
            # The hot path (open, one whole message): no coroutine, each
            # check done once.
            if transport._carrier._ws_send(transport._sid, message):  # type: ignore[arg-type]
                transport._set_writing_paused()
        elif isinstance(message, (str, bytes, bytearray, memoryview)):
            await self._ensure_open()
            transport.send(message)
        elif isinstance(message, AsyncIterable):
            await self._send_fragments(message.__aiter__())
        elif isinstance(message, Iterable):
            await self._send_fragments(_aiter_sync(message))
        else:
            raise TypeError("message must be str, bytes-like or an iterable of them")
        if self._write_paused:
            await self._drain()

    async def _send_fragments(self, fragments: AsyncIterator[Data]) -> None:
        # Each fragment is sent once the next one is known, so that the last
        # one carries FIN (RFC 6455 section 5.4).
        transport = self.transport
        opcode: int | None = None
        pending: Data | None = None
        started = False
        async for fragment in fragments:
            await self._ensure_open()
            is_text = isinstance(fragment, str)
            if opcode is None:
                opcode = _core.OP_TEXT if is_text else _core.OP_BINARY
            elif is_text != (opcode == _core.OP_TEXT):
                raise TypeError("all fragments of a message must be str, or all bytes-like")
            if pending is not None:
                transport.send_frame(_core.OP_CONT if started else opcode, _encode(pending), False)
                started = True
                if self._write_paused:
                    await self._drain()
            pending = fragment
        if pending is None or opcode is None:
            return
        await self._ensure_open()
        transport.send_frame(_core.OP_CONT if started else opcode, _encode(pending), True)

    async def _ensure_open(self) -> None:
        # While closing, wait for the end of the closing handshake (bounded by
        # the close timeout) and raise how it ended, as websockets does: an
        # echo loop that races the peer's close then ends quietly.
        if self._closed_exc is None and self.transport.is_closing():
            await self.wait_closed()
        if self._closed_exc is not None:
            raise self._closed_exc

    async def _drain(self) -> None:
        while self._write_paused and self._closed_exc is None:
            waiter = self.transport._loop.create_future()
            self._drain_waiter = waiter
            try:
                await waiter
            finally:
                self._drain_waiter = None
        if self._closed_exc is not None:
            raise self._closed_exc

    async def ping(self, data: bytes | str | None = None) -> asyncio.Future[float]:
        """Sends a ping; returns a future that resolves to the round-trip time
        in seconds when the pong arrives. ``data`` defaults to 4 random bytes."""
        await self._ensure_open()
        pings = self._pings
        if pings is None:
            pings = self._pings = {}
        if data is None:
            payload = os.urandom(4)
            while payload in pings:
                payload = os.urandom(4)
        else:
            payload = data.encode() if isinstance(data, str) else bytes(data)
            if payload in pings:
                raise InvalidState("a ping with this payload is already waiting for its pong")
        fut: asyncio.Future[float] = self.transport._loop.create_future()
        pings[payload] = (fut, time.monotonic())
        self.transport.ping(payload)
        return fut

    async def pong(self, data: bytes | str = b"") -> None:
        """Sends an unsolicited pong."""
        await self._ensure_open()
        self.transport.pong(data.encode() if isinstance(data, str) else bytes(data))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes the WebSocket (RFC 6455 §7.1.2) and waits until it is closed,
        at most the close timeout (then the stream is reset)."""
        if self._transport is None:
            return
        self.transport.close(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Waits until the WebSocket is closed."""
        if self._closed_exc is not None or self._transport is None:
            return
        if self._closed_future is None:
            self._closed_future = self._transport._loop.create_future()
        await asyncio.shield(self._closed_future)


def _encode(fragment: Data) -> bytes:
    return fragment.encode() if isinstance(fragment, str) else bytes(fragment)


async def _aiter_sync(items: Iterable[Data]) -> AsyncIterator[Data]:
    for item in items:
        yield item
