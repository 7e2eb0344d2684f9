"""A WebSocket on a raw HTTP/1.1 connection after the Upgrade: the C codec
on the socket, and the carrier methods its WebSocketTransport calls. Shared
by the server (h1.py) and the client (client.py)."""

from __future__ import annotations

import abc
import asyncio
from typing import Any

from . import _core
from .websocket import Data, WakeBatch, WebSocketTransport

__all__ = ["H1WebSocketCarrier"]

EV_TEXT = _core.EV_TEXT
EV_BINARY = _core.EV_BINARY
EV_PING = _core.EV_PING
EV_PONG = _core.EV_PONG
EV_CLOSE = _core.EV_CLOSE
EV_ERROR = _core.EV_ERROR

#: How long the side that closes first waits for the peer's FIN (see _close_transport).
LINGER_SECONDS = 2.0


class H1WebSocketCarrier(abc.ABC):
    """Mixin for a protocol whose connection became one WebSocket.

    The host sets ``_view`` (the read buffer), ``_codec`` (a WebSocketCodec
    of its role), ``_ws``, ``_transport``, ``_loop``, ``_write_limit`` and
    ``_closes_first`` (the
    server closes TCP first after the closing handshake, RFC 6455 §7.1.1, with
    a lingering close; a client waits for it), calls ``_init_carrier()`` and
    ``_carrier_lost()`` from ``connection_lost``, and provides
    ``_http_received`` (the bytes read before the upgrade), ``_pause_reading``
    and ``_resume_reading``.
    """

    _codec: _core.WebSocketCodec | None
    _ws: WebSocketTransport | None
    _view: memoryview
    _transport: asyncio.Transport | None
    _loop: asyncio.AbstractEventLoop
    _lost: bool
    _write_paused: bool
    _write_limit: int
    _closes_first: bool

    def _init_carrier(self) -> None:
        self._flush_handle: asyncio.Handle | None = None
        self._close_after_flush = False
        self._dispatching = False  # buffer_updated is dispatching events
        self._wake_batch = WakeBatch(self._loop)  # the transport's, see buffer_updated
        self._lingering = False  # FIN sent: only TCP is left (see _close_transport)
        self._linger_timer: asyncio.TimerHandle | None = None

    def _carrier_lost(self) -> None:
        """Called by the host's connection_lost: cancels the timers, ends the
        WebSocket."""
        self._lost = True
        for handle in (self._flush_handle, self._linger_timer):
            if handle is not None:
                handle.cancel()
        if self._ws is not None:
            self._ws._on_ended()

    @abc.abstractmethod
    def _pause_reading(self) -> None:
        """Stops reading the socket."""

    @abc.abstractmethod
    def _resume_reading(self) -> None:
        """Reads the socket again."""

    def _close_transport(self) -> None:
        """Closes the connection after what is buffered. The side that closes
        first (the server) lingers: closing with unread bytes in the kernel
        would send a RST that can destroy our answer in flight (or the close
        frame of a WebSocket failed while its peer still sends). So it sends
        FIN, discards what still comes, and closes at EOF or after
        LINGER_SECONDS."""
        t = self._transport
        if t is None or t.is_closing():
            return
        if self._closes_first and not self._lingering and t.can_write_eof():
            self._lingering = True
            if self._ws is not None:
                self._ws._on_ended()  # the WebSocket is over; only TCP lingers
            t.write_eof()
            self._resume_reading()
            self._linger_timer = self._loop.call_later(LINGER_SECONDS, t.close)
            return
        t.close()

    # -- asyncio.BufferedProtocol's write flow control ----------------------------

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._ws is not None:
            self._ws._set_writing_paused()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._ws is not None:
            self._ws._on_resume_writing()

    @abc.abstractmethod
    def _http_received(self, nbytes: int) -> None:
        """`nbytes` bytes in ``_view`` before the upgrade (or while lingering)."""

    def buffer_updated(self, nbytes: int) -> None:
        """asyncio.BufferedProtocol: `nbytes` new bytes in ``_view``. Once the
        codec runs: parses them in one C call, dispatches every event, resumes
        the handlers whose recv() got a message (they run now, see
        WakeBatch), then writes everything they sent in one write."""
        codec = self._codec
        if codec is None or self._lingering:
            self._http_received(nbytes)
            return
        t = self._ws
        assert t is not None
        events = codec.receive_data(self._view[:nbytes])
        batch = self._wake_batch
        self._dispatching = batch.active = True  # sends need no flush scheduled
        try:
            for ev in events:
                kind = ev[0]
                if kind == EV_BINARY or kind == EV_TEXT:
                    if t._reading_paused:
                        t._on_message(ev[1], 0)  # held until reading resumes
                    else:
                        # t._on_message() and _deliver() without the credit
                        # bookkeeping: over TCP a message carries no credit.
                        t._protocol.message_received(ev[1])
                else:
                    self._ws_control(codec, t, ev)
        finally:
            batch.active = False
            if batch.waiters:
                batch.run()
            self._dispatching = False
        # _flush() inlined
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._lost or self._lingering or self._transport is None:
            return
        out = codec.data_to_send()
        if out:
            self._transport.write(out)
        if self._close_after_flush:
            self._close_transport()

    def _ws_data(self, data: bytes) -> None:
        """Frames that came with the handshake, once the codec runs: read as
        if they had come from the socket, through ``_view``. Call it from a
        loop callback, never from a task (see WakeBatch)."""
        view = self._view
        size = len(view)
        for start in range(0, len(data), size):
            chunk = data[start : start + size]
            view[: len(chunk)] = chunk
            self.buffer_updated(len(chunk))

    def _ws_control(
        self, codec: _core.WebSocketCodec, t: WebSocketTransport, ev: tuple[Any, ...]
    ) -> None:
        kind = ev[0]
        if kind == EV_PING:
            if not codec.close_sent:
                codec.pong(ev[1])  # RFC 6455 section 5.5.2
        elif kind == EV_PONG:
            t._on_pong(ev[1])
        elif kind == EV_CLOSE:
            # Section 5.5.1: echo the close frame; then the server closes
            # the TCP connection first (section 7.1.1).
            if not codec.close_sent:
                code = ev[1]
                codec.close(None if code == 1005 else code)
            t._on_peer_close(ev[1], ev[2])
            self._close_after_flush = self._closes_first
        elif kind == EV_ERROR:
            if not codec.close_sent:
                codec.close(ev[1], ev[2][:123])
            t._on_failed(ev[1], ev[2])
            self._close_after_flush = True  # section 7.1.7: fail the connection

    def _schedule_flush(self) -> None:
        # While a read is dispatched, its _flush() at the end sends it all.
        if self._flush_handle is None and not self._dispatching and not self._lost:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        handle = self._flush_handle
        if handle is not None:
            handle.cancel()  # when called before its turn
            self._flush_handle = None
        if self._lost or self._lingering or self._codec is None or self._transport is None:
            return
        data = self._codec.data_to_send()
        if data:
            self._transport.write(data)
        if self._close_after_flush:
            self._close_transport()

    # -- what WebSocketTransport calls (the _Carrier interface) ----------------------

    def _ws_send(self, sid: int, message: Data | bytearray | memoryview) -> bool:
        codec = self._codec
        assert codec is not None
        pending = codec.send(message)
        # _queued() inlined: the hot path of every echo.
        t = self._transport
        if t is not None and pending + t.get_write_buffer_size() > self._write_limit:
            self._flush()
        elif self._flush_handle is None and not self._dispatching and not self._lost:
            self._flush_handle = self._loop.call_soon(self._flush)
        return self._write_paused

    def _ws_send_frame(self, sid: int, opcode: int, payload: bytes, fin: bool) -> bool:
        assert self._codec is not None
        self._queued(self._codec.send_frame(opcode, payload, fin=fin))
        return self._write_paused

    def _queued(self, pending: int) -> None:
        """Output goes out once per loop tick (at the end of buffer_updated while
        a read is dispatched), or at once when the `pending` bytes in the
        codec would take the socket's buffer over write_limit: then
        pause_writing comes now and send() waits, even for a sender that
        never yields to the loop."""
        t = self._transport
        if t is not None and pending + t.get_write_buffer_size() > self._write_limit:
            self._flush()
        elif self._flush_handle is None and not self._dispatching and not self._lost:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _ws_close(self, sid: int, code: int | None, reason: str) -> None:
        codec = self._codec
        assert codec is not None
        if codec.close_sent:
            return
        codec.close(code, reason)
        if codec.close_received:
            self._close_after_flush = self._closes_first
        self._schedule_flush()

    def _ws_abort(self, sid: int) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _ws_consume(self, sid: int, credit: int) -> None:
        return None  # TCP does the flow control: see _ws_pause_reading

    def _ws_pause_reading(self, sid: int, paused: bool) -> None:
        if paused:
            self._pause_reading()
        else:
            self._resume_reading()

    def _ws_extra_info(self, name: str, default: Any) -> Any:
        if name == "_buffered":
            return lambda sid: self._transport.get_write_buffer_size() if self._transport else 0
        if name == "connection":
            return self
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)

    def _ws_write_paused(self) -> bool:
        return self._write_paused
