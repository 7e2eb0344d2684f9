"""aiohttp echo server (HTTP/1.1, ``web.WebSocketResponse``).

python benchmarks/servers/aiohttp_echo.py --port 8080 [--loop uvloop] [--tls ...]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BACKLOG, MAX_MESSAGE, forever, parser, run, server_context  # noqa: E402
from aiohttp import WSMsgType, web  # noqa: E402


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, autoping=True, compress=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    ctx = server_context(args)

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port, ssl_context=ctx, backlog=BACKLOG)
        await site.start()
        try:
            await forever()
        finally:
            await runner.cleanup()

    run(serve, args.loop)


if __name__ == "__main__":
    main()
