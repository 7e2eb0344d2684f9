"""picows echo server (HTTP/1.1, frame callbacks).

    python benchmarks/servers/picows_echo.py --port 8080 [--loop uvloop] [--tls ...]

Frames are echoed as they come (a fragmented message goes back fragmented, with
the same opcodes); pings are answered by picows; a close frame is answered and
the connection ends.
"""

from __future__ import annotations

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BACKLOG, MAX_MESSAGE, forever, parser, run, server_context  # noqa: E402
from picows import (  # noqa: E402
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

DATA = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION)


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type in DATA:
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    ctx = server_context(args)

    async def serve() -> None:
        def listener(request: WSUpgradeRequest) -> Echo:
            return Echo()

        server: asyncio.Server = await ws_create_server(
            listener,
            args.host,
            args.port,
            ssl=ctx,
            max_frame_size=MAX_MESSAGE,
            backlog=BACKLOG,
        )
        async with server:
            await forever()

    run(serve, args.loop)


if __name__ == "__main__":
    main()
