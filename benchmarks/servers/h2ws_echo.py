"""h2ws echo server: HTTP/2 (RFC 8441, h2c or ALPN h2) and HTTP/1.1 on one port.

    python benchmarks/servers/h2ws_echo.py --port 8080 [--loop asyncio|uvloop]
        [--api callback|handler] [--window BYTES] [--tls --certfile C --keyfile K]

``--api callback`` (the default) echoes from ``WebSocketProtocol.message_received``
(no Future per message); ``--api handler`` runs the ``async for message in ws``
handler of the README. Keepalive pings are off, messages up to 64 MiB.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from _common import BACKLOG, MAX_MESSAGE, MAX_STREAMS, forever, parser, run, server_context  # noqa: E402

import h2ws  # noqa: E402
from h2ws.websocket import Data  # noqa: E402


class Echo(h2ws.WebSocketProtocol):
    """Sends every message straight back from the callback."""

    transport: h2ws.WebSocketTransport

    def connection_made(self, transport: h2ws.WebSocketTransport) -> None:
        self.transport = transport

    def message_received(self, message: Data) -> None:
        self.transport.send(message)


async def echo(ws: h2ws.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--api", choices=("callback", "handler"), default="callback")
    p.add_argument("--window", type=int, default=256 * 1024, help="stream initial window")
    args = p.parse_args()
    ctx = server_context(args)  # serve() sets ALPN h2, http/1.1

    async def serve() -> None:
        options = dict(
            ssl=ctx,
            max_message_size=MAX_MESSAGE,
            max_concurrent_streams=MAX_STREAMS,
            ping_interval=None,
            ping_timeout=None,
            initial_window_size=args.window,
            connection_window_size=max(8 << 20, 2 * args.window),
            backlog=BACKLOG,
        )
        if args.api == "callback":
            server = h2ws.serve(None, args.host, args.port, protocol_factory=Echo, **options)
        else:
            server = h2ws.serve(echo, args.host, args.port, **options)
        async with server:
            await forever()

    run(serve, args.loop)


if __name__ == "__main__":
    main()
