"""The ASGI echo application that Hypercorn and uvicorn serve, and their launchers.

    python benchmarks/servers/asgi_echo.py hypercorn --port 8080 [--nodelay] [--tls ...]
    python benchmarks/servers/asgi_echo.py uvicorn --port 8080 [--tls ...]

Hypercorn runs in-process as its ``-k uvloop`` worker does (``uvloop`` installed,
then ``hypercorn.asyncio.serve``) with one worker, so the process measured is the one
serving. It speaks HTTP/1.1 and HTTP/2 on one port: h2c by prior knowledge on
cleartext (Hypercorn switches to HTTP/2 when a connection opens with the preface)
and ALPN ``h2`` with TLS; it advertises SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441).
``--nodelay`` sets TCP_NODELAY on every accepted socket before Hypercorn
serves it (a subclass of its ``TCPServer``); without it, Hypercorn is stock.

uvicorn runs with ``ws="websockets"``, ``loop="uvloop"``, ``http="httptools"``
(HTTP/1.1 only).
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BACKLOG, MAX_MESSAGE, MAX_STREAMS, parser, run  # noqa: E402

Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """Echoes each WebSocket message with its type; answers plain requests 426."""
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 426, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    event = await receive()  # websocket.connect
    if event["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] != "websocket.receive":
            return
        if event.get("text") is not None:
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            await send({"type": "websocket.send", "bytes": event["bytes"]})


def hypercorn_main(argv: list[str]) -> None:
    p = parser("Hypercorn (uvloop worker) serving the ASGI echo app", loop=False)
    p.add_argument("--nodelay", action="store_true", help="TCP_NODELAY on accepted sockets")
    args = p.parse_args(argv)

    import hypercorn.asyncio.run as hrun
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{args.host}:{args.port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    config.backlog = BACKLOG
    config.h2_max_concurrent_streams = MAX_STREAMS
    config.websocket_max_message_size = MAX_MESSAGE
    config.websocket_ping_interval = None
    if args.tls:
        config.certfile = args.certfile
        config.keyfile = args.keyfile
        config.alpn_protocols = ["h2", "http/1.1"]

    if args.nodelay:
        stock = hrun.TCPServer  # type: ignore[attr-defined]

        class NoDelayTCPServer(stock):  # type: ignore[misc, valid-type]
            """Hypercorn's TCPServer, after setting TCP_NODELAY on its socket."""

            async def run(self) -> None:
                sock = self.writer.get_extra_info("socket")
                if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await super().run()

        hrun.TCPServer = NoDelayTCPServer  # type: ignore[attr-defined]

    async def main() -> None:
        await serve(app, config)  # type: ignore[arg-type]

    run(main, "uvloop")


def uvicorn_main(argv: list[str]) -> None:
    args = parser("uvicorn (websockets, uvloop) serving the ASGI echo app", loop=False).parse_args(
        argv
    )
    import uvicorn

    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets",
        ws_max_size=MAX_MESSAGE,
        ws_ping_interval=None,
        ws_per_message_deflate=False,
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=BACKLOG,
        ssl_certfile=args.certfile if args.tls else None,
        ssl_keyfile=args.keyfile if args.tls else None,
    )


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("hypercorn", "uvicorn"):
        raise SystemExit("usage: asgi_echo.py hypercorn|uvicorn --port P [...]")
    (hypercorn_main if sys.argv[1] == "hypercorn" else uvicorn_main)(sys.argv[2:])
