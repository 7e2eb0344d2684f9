"""`websockets` echo server (HTTP/1.1, its asyncio implementation).

python benchmarks/servers/websockets_echo.py --port 8080 [--loop uvloop] [--tls ...]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BACKLOG, MAX_MESSAGE, forever, parser, run, server_context  # noqa: E402
from websockets.asyncio.server import ServerConnection, serve  # noqa: E402


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    ctx = server_context(args)

    async def serve_() -> None:
        async with serve(
            echo,
            args.host,
            args.port,
            ssl=ctx,
            max_size=MAX_MESSAGE,
            ping_interval=None,
            compression=None,
            backlog=BACKLOG,
        ):
            await forever()

    run(serve_, args.loop)


if __name__ == "__main__":
    main()
