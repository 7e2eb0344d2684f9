"""Echo every message on every path, over HTTP/2 (RFC 8441).

python examples/echo_server.py --host 127.0.0.1 --port 8080                 # h2c
python examples/echo_server.py --port 8443 --certfile c.pem --keyfile k.pem  # TLS
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl

import h2ws


async def echo(ws: h2ws.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--max-concurrent-streams", type=int, default=100)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")

    context = None
    if args.certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.certfile, args.keyfile)
    scheme = "wss" if context else "ws"
    async with h2ws.serve(
        echo,
        args.host,
        args.port,
        ssl=context,
        max_concurrent_streams=args.max_concurrent_streams,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"echo server on {scheme}://{args.host}:{port}/ (HTTP/2, RFC 8441)", flush=True)
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set_result, None)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
