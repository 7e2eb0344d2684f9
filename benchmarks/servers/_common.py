"""What every Python echo server of the benchmark shares: options, TLS, the loop.

Each server echoes every message back with its type (text stays text, binary
stays binary) on any path, answers pings and closes cleanly. They print
nothing that the harness needs: ``benchmarks/run.py`` waits until the port
accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

#: Largest message every server accepts: the 16 MiB bulk messages plus slack.
MAX_MESSAGE = 64 * 1024 * 1024
#: SETTINGS_MAX_CONCURRENT_STREAMS for the HTTP/2 servers (idle run: 1,000 per connection).
MAX_STREAMS = 2000
#: listen() backlog of every server (the idle run opens 10,000 connections at once).
BACKLOG = 4096


def parser(description: str, *, loop: bool = True) -> argparse.ArgumentParser:
    """The options all servers take: ``--host --port [--tls --certfile --keyfile]``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", action="store_true", help="serve TLS (needs --certfile/--keyfile)")
    p.add_argument("--certfile")
    p.add_argument("--keyfile")
    if loop:
        p.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    return p


def server_context(
    args: argparse.Namespace, alpn: list[str] | None = None
) -> ssl.SSLContext | None:
    """A server ``SSLContext`` when ``--tls`` was given, else ``None``."""
    if not args.tls:
        return None
    if not args.certfile:
        raise SystemExit("--tls needs --certfile (and --keyfile)")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.certfile, args.keyfile)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def run(main: Callable[[], Coroutine[Any, Any, None]], loop_name: str) -> None:
    """Runs ``main()`` on asyncio's loop or uvloop until SIGTERM/SIGINT."""

    async def until_signal() -> None:
        loop = asyncio.get_running_loop()
        stop: asyncio.Future[None] = loop.create_future()

        def on_signal() -> None:
            if not stop.done():
                stop.set_result(None)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        task = asyncio.ensure_future(main())
        try:
            await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            task.cancel()
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    if loop_name == "uvloop":
        import uvloop

        uvloop.run(until_signal())
    else:
        asyncio.run(until_signal())


async def forever() -> None:
    """Sleeps until cancelled."""
    await asyncio.Event().wait()
