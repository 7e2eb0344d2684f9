"""A WebSocket on a raw HTTP/1.1 connection after the Upgrade: the C codec
on the socket, and the carrier methods its WebSocketTransport calls. Shared
by the server (h1.py) and the client (client.py)."""

from __future__ import annotations

import abc
import asyncio
from typing import Any

from . import _core
from .websocket import Data, WebSocketTransport

__all__ = ["H1WebSocketCarrier"]

EV_TEXT = _core.EV_TEXT
EV_BINARY = _core.EV_BINARY
EV_PING = _core.EV_PING
EV_PONG = _core.EV_PONG
EV_CLOSE = _core.EV_CLOSE
EV_ERROR = _core.EV_ERROR


class H1WebSocketCarrier(abc.ABC):
    """Mixin for a protocol whose connection became one WebSocket.

    The host sets ``_codec`` (a WebSocketCodec of its role), ``_ws``,
    ``_transport``, ``_loop``, ``_write_limit`` and ``_closes_first`` (the
    server closes TCP first after the closing handshake, RFC 6455 §7.1.1; a
    client waits for it), and provides ``_pause_reading``,
    ``_resume_reading`` and ``_close_transport``.
    """

    _codec: _core.WebSocketCodec | None
    _ws: WebSocketTransport | None
    _transport: asyncio.Transport | None
    _loop: asyncio.AbstractEventLoop
    _lost: bool
    _write_paused: bool
    _write_limit: int
    _closes_first: bool

    def _init_carrier(self) -> None:
        self._flush_handle: asyncio.Handle | None = None
        self._unflushed = 0
        self._close_after_flush = False

    @abc.abstractmethod
    def _pause_reading(self) -> None:
        """Stops reading the socket."""

    @abc.abstractmethod
    def _resume_reading(self) -> None:
        """Reads the socket again."""

    @abc.abstractmethod
    def _close_transport(self) -> None:
        """Closes the connection (after what is buffered)."""

    def _ws_data(self, data: bytes | memoryview) -> None:
        codec = self._codec
        t = self._ws
        assert codec is not None and t is not None
        for ev in codec.receive_data(data):
            kind = ev[0]
            if kind == EV_TEXT or kind == EV_BINARY:
                t._on_message(ev[1], 0)
            elif kind == EV_PING:
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
        self._flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is None and not self._lost:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()  # when called before its turn
            self._flush_handle = None
        self._unflushed = 0
        if self._lost or self._codec is None or self._transport is None:
            return
        data = self._codec.data_to_send()
        if data:
            self._transport.write(data)
        if self._close_after_flush:
            self._close_transport()

    # -- what WebSocketTransport calls (the _Carrier interface) ----------------------

    def _ws_send(self, sid: int, message: Data | bytearray | memoryview) -> bool:
        assert self._codec is not None
        self._codec.send(message)
        self._queued(len(message))
        return self._write_paused

    def _ws_send_frame(self, sid: int, opcode: int, payload: bytes, fin: bool) -> bool:
        assert self._codec is not None
        self._codec.send_frame(opcode, payload, fin=fin)
        self._queued(len(payload))
        return self._write_paused

    def _queued(self, n: int) -> None:
        """Output goes out once per loop tick, or at once when it would take
        the socket's buffer over write_limit: then pause_writing comes now
        and send() waits, even for a sender that never yields to the loop."""
        self._unflushed += n
        t = self._transport
        if t is not None and self._unflushed + t.get_write_buffer_size() > self._write_limit:
            self._flush()
        else:
            self._schedule_flush()

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
