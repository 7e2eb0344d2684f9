"""``h2ws MODULE:APP``: serve an ASGI application over HTTP/2 and HTTP/1.1.

With uvicorn's and Hypercorn's habits:

    h2ws app:app --port 8000
    h2ws examples.demo:app --port 8443 --certfile cert.pem --keyfile key.pem
    h2ws app:app --workers 4 --loop uvloop

SIGTERM or SIGINT stops accepting, closes every WebSocket with 1001, sends
GOAWAY, lets requests finish within --graceful-timeout, and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any

from .asgi import ASGIApp, serve_asgi

__all__ = ["main", "load_app", "build_parser"]

logger = logging.getLogger("h2ws.cli")

#: Exit status when the application's lifespan startup failed.
STARTUP_FAILED = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="h2ws",
        description="Serve an ASGI application over HTTP/2 (WebSockets by RFC 8441) and HTTP/1.1.",
    )
    p.add_argument("app", help="the application, as MODULE:ATTRIBUTE (e.g. main:app)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to bind (default 8000; 0: any)")
    p.add_argument("--uds", help="bind a Unix domain socket at this path instead")
    p.add_argument("--certfile", help="TLS certificate (PEM); enables HTTPS with ALPN h2, http/1.1")
    p.add_argument("--keyfile", help="TLS private key (PEM)")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the port")
    p.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="event loop (auto: uvloop if installed)",
    )
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.add_argument(
        "--access-log",
        dest="access_log",
        action="store_true",
        default=True,
        help="log each request and WebSocket (default)",
    )
    p.add_argument("--no-access-log", dest="access_log", action="store_false")
    p.add_argument(
        "--ws-max-size",
        type=int,
        default=1 << 20,
        help="largest WebSocket message in bytes (default 1 MiB)",
    )
    p.add_argument(
        "--ws-ping-interval",
        type=float,
        default=20.0,
        help="seconds between keepalive pings (0: off; default 20)",
    )
    p.add_argument(
        "--ws-ping-timeout",
        type=float,
        default=20.0,
        help="seconds to wait for a pong (default 20)",
    )
    p.add_argument(
        "--graceful-timeout",
        type=float,
        default=10.0,
        help="seconds a shutdown waits for streams and requests (default 10)",
    )
    p.add_argument(
        "--no-ws-over-h2",
        dest="ws_over_h2",
        action="store_false",
        default=True,
        help="never advertise RFC 8441: browsers then open WebSockets over HTTP/1.1",
    )
    p.add_argument(
        "--max-concurrent-streams",
        type=int,
        default=100,
        help="HTTP/2 streams per connection (default 100)",
    )
    p.add_argument("--root-path", default="", help="ASGI root_path (mount prefix behind a proxy)")
    p.add_argument(
        "--app-dir",
        default=".",
        help="directory put first on sys.path to import the app (default: current)",
    )
    p.add_argument("--lifespan", choices=["auto", "on", "off"], default="auto")
    return p


def load_app(spec: str, app_dir: str = ".") -> ASGIApp:
    """Imports MODULE:ATTRIBUTE (ATTRIBUTE may be dotted)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"h2ws: the app must be given as MODULE:ATTRIBUTE, not {spec!r}")
    path = str(Path(app_dir).resolve())
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise SystemExit(f"h2ws: cannot import module {module_name!r} (from {path})") from exc
        raise
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"h2ws: module {module_name!r} has no attribute {attr!r}") from None
    return obj  # type: ignore[no-any-return]


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.certfile:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.certfile, args.keyfile)
    return ctx


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise SystemExit("h2ws: --loop uvloop needs the uvloop package") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _bind(args: argparse.Namespace, *, listen: bool) -> socket.socket:
    """The listening socket. With several workers each binds its own with
    SO_REUSEPORT and the kernel spreads connections over them."""
    if args.uds:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if listen:
            try:
                os.unlink(args.uds)
            except FileNotFoundError:
                pass
            sock.bind(args.uds)
            sock.listen(1024)
        return sock
    infos = socket.getaddrinfo(
        args.host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    family, socktype, proto, _, addr = infos[0]
    sock = socket.socket(family, socktype, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.workers > 1:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(addr)
    if listen:
        sock.listen(1024)
    return sock


async def _serve(args: argparse.Namespace, app: ASGIApp, sock: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    ctx = _ssl_context(args)
    try:
        server = await serve_asgi(
            app,
            sock=sock,
            ssl=ctx,
            lifespan=args.lifespan,
            max_message_size=args.ws_max_size,
            ping_interval=args.ws_ping_interval or None,
            ping_timeout=args.ws_ping_timeout or None,
            shutdown_timeout=args.graceful_timeout,
            ws_over_h2=args.ws_over_h2,
            max_concurrent_streams=args.max_concurrent_streams,
            root_path=args.root_path,
            access_log=args.access_log,
        )
    except RuntimeError as exc:  # lifespan startup failed
        logger.error("%s", exc)
        return STARTUP_FAILED
    scheme = "https" if ctx else "http"
    where = args.uds or f"{scheme}://{args.host}:{sock.getsockname()[1]}"
    logger.info(
        "h2ws serving %s on %s (pid %s; HTTP/2 %s, HTTP/1.1; WebSockets over HTTP/2 %s)",
        args.app,
        where,
        os.getpid(),
        "by ALPN" if ctx else "h2c by prior knowledge",
        "advertised" if args.ws_over_h2 else "not advertised",
    )
    await stop
    logger.info("shutting down (pid %s)", os.getpid())
    server.close()
    await server.wait_closed()
    return 0


def _run_worker(args: argparse.Namespace, sock: socket.socket | None) -> int:
    app = load_app(args.app, args.app_dir)
    if sock is None:
        sock = _bind(args, listen=True)
    loop = _new_loop(args.loop)
    try:
        return loop.run_until_complete(_serve(args, app, sock))
    finally:
        loop.close()


def _supervise(args: argparse.Namespace) -> int:
    """Forks the workers, restarts one that dies, and on SIGTERM/SIGINT
    forwards SIGTERM and waits for them (graceful timeout plus a margin)."""
    reserve = None
    if not args.uds:
        reserve = _bind(args, listen=False)  # resolves --port 0, holds the port
        args.port = reserve.getsockname()[1]
    shared = _bind(args, listen=True) if args.uds else None
    stopping = False
    failed = False
    children: dict[int, int] = {}

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = _run_worker(args, shared)
            finally:
                os._exit(code)
        children[pid] = index

    def stop_all() -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def on_signal(signum: int, frame: Any) -> None:
        stop_all()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for i in range(args.workers):
        spawn(i)
    logger.info("h2ws: %d workers on port %s (pid %s)", args.workers, args.port, os.getpid())
    deadline: float | None = None
    while children:
        if stopping and deadline is None:
            deadline = time.monotonic() + args.graceful_timeout + 5
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if deadline is not None and time.monotonic() > deadline:
                for p in children:
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.05)
            continue
        index = children.pop(pid)
        if stopping:
            continue
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == STARTUP_FAILED:
            # The application cannot start: restarting would fail the same way.
            logger.error("worker %s: the application did not start; stopping", pid)
            failed = True
            stop_all()
            continue
        logger.error("worker %s exited (status %s): restarting it", pid, status)
        spawn(index)
    if reserve is not None:
        reserve.close()
    return STARTUP_FAILED if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
    if args.certfile and not args.keyfile:
        args.keyfile = args.certfile
    if args.workers < 1:
        raise SystemExit("h2ws: --workers must be at least 1")
    if args.workers == 1:
        return _run_worker(args, None)
    load_app(args.app, args.app_dir)  # fail early, in the parent
    return _supervise(args)


if __name__ == "__main__":
    sys.exit(main())
