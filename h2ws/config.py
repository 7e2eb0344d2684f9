"""Settings of a server, with the defaults users of websockets and Hypercorn expect."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerConfig"]


@dataclass
class ServerConfig:
    """What ``serve()`` accepts as keyword arguments (all settable).

    Sizes are in bytes and times in seconds; ``None`` disables a limit or timer.
    """

    #: Largest message accepted; a bigger one closes the WebSocket with 1009.
    max_message_size: int | None = 1 << 20
    #: Send a ping this often on every WebSocket; ``None`` turns keepalive off.
    ping_interval: float | None = 20.0
    #: Close with 1011 when a keepalive ping's pong takes longer than this.
    ping_timeout: float | None = 20.0
    #: After our close frame (or the peer's), reset the stream if it has not
    #: ended within this time (RST_STREAM CANCEL over HTTP/2).
    close_timeout: float = 10.0
    #: Bound on ``process_request`` before the WebSocket is refused (503), and
    #: how long an HTTP/1.1 connection may stay idle before a request.
    open_timeout: float | None = 10.0
    #: SETTINGS_MAX_CONCURRENT_STREAMS advertised to HTTP/2 clients.
    max_concurrent_streams: int = 100
    #: SETTINGS_INITIAL_WINDOW_SIZE: how much a stream may send ahead of what
    #: its application has read.
    initial_window_size: int = 256 * 1024
    #: The connection's receive window.
    connection_window_size: int = 8 * 1024 * 1024
    #: SETTINGS_MAX_HEADER_LIST_SIZE, and the largest HTTP/1.1 request head
    #: (request line and headers); larger request heads get 431.
    max_header_list_size: int = 16 * 1024
    #: Most header fields in an HTTP/1.1 request head (more: 431).
    max_headers: int = 100
    #: SETTINGS_MAX_FRAME_SIZE (largest DATA frame the server accepts).
    max_frame_size: int = 16384
    #: Bytes queued per WebSocket before ``send()`` waits for the peer.
    write_limit: int = 64 * 1024
    #: Advertise SETTINGS_ENABLE_CONNECT_PROTOCOL (WebSockets over HTTP/2).
    #: Browsers read it as a promise: turn it off only to force HTTP/1.1.
    ws_over_h2: bool = True
    #: Seconds a graceful shutdown waits for streams to finish.
    shutdown_timeout: float = 10.0
    #: ASGI ``root_path``: the prefix the application is mounted at.
    root_path: str = ""
    #: Log one line per request and per WebSocket on the ``h2ws.access`` logger.
    access_log: bool = False
