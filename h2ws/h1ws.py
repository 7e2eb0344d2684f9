"""A WebSocket on a raw HTTP/1.1 connection after the Upgrade: the C codec
on the socket, and the carrier methods its WebSocketTransport calls. Shared
by the server (h1.py) and the client (client.py)."""

from __future__ import annotations

import abc
import asyncio
from typing import Any

from . import _core
from .websocket import WakeBatch, WebSocketTransport

__all__ = ["H1WebSocketCarrier"]

EV_TEXT = _core.EV_TEXT
EV_BINARY = _core.EV_BINARY
EV_PING = _core.EV_PING
EV_PONG = _core.EV_PONG
EV_CLOSE = _core.EV_CLOSE
EV_ERROR = _core.EV_ERROR

#: How long the side that closes first waits for the peer's FIN (see _close_transport).
LINGER_SECONDS = 2.0


class H1WebSocketCarrier(_core.H1Carrier, abc.ABC):
    """Base of a protocol whose connection became one WebSocket. The
    per-message path (get_buffer, buffer_updated, _ws_send, _queued, _flush)
    and the attributes it reads are the C base's, ``_core.H1Carrier``.

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

    # buffer_updated() and get_buffer() are _core.H1Carrier's: the per-message
    # path in C (see csrc/py/carrier.c). Before the upgrade, or while
    # lingering, buffer_updated() calls _http_received().

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

    # _flush() is _core.H1Carrier's: cancels a scheduled flush, writes what
    # the codec has, and closes after it when _close_after_flush is set.

    # -- what WebSocketTransport calls (the _Carrier interface) ----------------------

    # _ws_send(sid, message) -> bool is _core.H1Carrier's: the hot path of
    # every echo (codec.send(), then _queued()).

    def _ws_send_frame(self, sid: int, opcode: int, payload: bytes, fin: bool) -> bool:
        assert self._codec is not None
        self._queued(self._codec.send_frame(opcode, payload, fin=fin))
        return self._write_paused

    # _queued(pending) is _core.H1Carrier's: output goes out once per loop
    # tick (at the end of buffer_updated while a read is dispatched), or at
    # once when the pending bytes in the codec would take the socket's buffer
    # over _write_limit: then pause_writing comes now and send() waits, even
    # for a sender that never yields to the loop.

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
