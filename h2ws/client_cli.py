"""``python -m h2ws.client URI``: an interactive WebSocket client, for trying servers.

    python -m h2ws.client wss://example.com/chat
    python -m h2ws.client ws://127.0.0.1:8000/ --http2 on
    printf 'hello\\n' | python -m h2ws.client wss://localhost:8443/ --cafile cert.pem

It first says which protocol carried the WebSocket ("over HTTP/2 (RFC 8441)"
or "over HTTP/1.1") and the subprotocol, if any. Then each line read from
stdin goes out as a text message, and each message received is printed after
``< `` (binary ones as their size and leading bytes in hex). End of input
(Ctrl-D) or Ctrl-C closes the WebSocket with 1000; a close by the server is
printed with its code and reason. Stdin may be a terminal, a pipe or a file.

Exit status: 0 after a normal closure (1000 or 1001 both ways), 1 when the
WebSocket could not be opened or ended otherwise, 2 for a usage error, 130
when interrupted while closing (a second Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import os
import signal
import ssl
import sys
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

from .client import connect
from .exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake
from .websocket import WebSocket

__all__ = ["main", "build_parser"]

#: Names of close codes (RFC 6455 section 7.4.1 and the IANA registry).
CLOSE_CODES = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status code",
    1006: "abnormal closure",
    1007: "invalid payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure",
}

#: Binary messages are shown as their size and at most this many bytes in hex.
HEX_BYTES = 32


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m h2ws.client",
        description=(
            "Open a WebSocket (over HTTP/2 by RFC 8441 when the server offers it, else "
            "HTTP/1.1), send each line of stdin as a text message, print what arrives."
        ),
        epilog=(
            "Ctrl-D (end of input) or Ctrl-C closes with 1000. Exit status: 0 after a "
            "normal closure, 1 on failure or another close code, 2 for usage errors."
        ),
    )
    p.add_argument("uri", help="ws:// or wss:// URI")
    p.add_argument(
        "--http2",
        choices=["auto", "on", "off"],
        default="auto",
        help=(
            "auto: HTTP/2 when a wss:// server offers RFC 8441, else HTTP/1.1 (default); "
            "on: HTTP/2 only (h2c with prior knowledge on ws://); off: HTTP/1.1 only"
        ),
    )
    p.add_argument(
        "--insecure", action="store_true", help="do not verify the server's TLS certificate"
    )
    p.add_argument("--cafile", help="trust the CA certificates in this PEM file (wss://)")
    p.add_argument(
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="offer this subprotocol (repeatable, in order of preference)",
    )
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="add this header to the opening request (repeatable)",
    )
    p.add_argument("--origin", help="send this Origin header")
    return p


def _headers(values: list[str], parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    headers = []
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip() or name != name.strip():
            parser.error(f"--header wants NAME:VALUE, not {value!r}")
        headers.append((name, rest.strip()))
    return headers


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.insecure or args.cafile):
        return None  # connect() uses the system's trust store
    ctx = ssl.create_default_context(cafile=args.cafile)
    if args.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def describe_close(exc: ConnectionClosed) -> str:
    """``Connection closed: 1000 (normal closure), reason "bye"``."""
    text = f"Connection closed: {exc.code} ({CLOSE_CODES.get(exc.code, 'unknown code')})"
    if exc.reason:
        text += f', reason "{exc.reason}"'
    return text


def describe_message(message: str | bytes) -> str:
    if isinstance(message, str):
        return f"< {message}"
    shown = message[:HEX_BYTES].hex(" ")
    more = " ..." if len(message) > HEX_BYTES else ""
    return f"< [binary, {len(message)} bytes] {shown}{more}".rstrip()


class _Console:
    """Prints lines; on a terminal keeps a ``> `` prompt under them."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def show(self, line: str) -> None:
        if self.interactive:
            # Erase the prompt line, print, and draw the prompt again.
            sys.stdout.write(f"\r\x1b[2K{line}\n> ")
        else:
            sys.stdout.write(f"{line}\n")
        sys.stdout.flush()

    def prompt(self) -> None:
        if self.interactive:
            sys.stdout.write("> ")
            sys.stdout.flush()

    def end(self, line: str) -> None:
        if self.interactive:
            sys.stdout.write("\r\x1b[2K")
        sys.stdout.write(f"{line}\n")
        sys.stdout.flush()


def _read_stdin(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Runs in a daemon thread: reads fd 0 with os.read (so that no lock of
    sys.stdin is held if the process exits while it waits) and hands each
    line, then None at end of input, to the loop."""

    def put(item: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(lines.put_nowait, item)
        except RuntimeError:  # the loop is closed: the client is done
            return False
        return True

    encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    pending = ""
    try:
        while True:
            data = os.read(0, 65536)
            pending += decoder.decode(data, final=not data)
            *complete, pending = pending.split("\n")
            for line in complete:
                if not put(line.removesuffix("\r")):
                    return
            if not data:
                break
    except OSError:
        pass  # no stdin, or it went away: end of input
    if pending:
        put(pending)
    put(None)


async def _receive(ws: WebSocket, console: _Console) -> ConnectionClosed:
    while True:
        try:
            message = await ws.recv()
        except ConnectionClosed as exc:
            return exc
        console.show(describe_message(message))


@contextlib.contextmanager
def _on_sigint(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    """The first Ctrl-C sets `stop`; the next one interrupts as usual."""

    def handle() -> None:
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)

    try:
        loop.add_signal_handler(signal.SIGINT, handle)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def run(args: argparse.Namespace, headers: list[tuple[str, str]]) -> int:
    """Opens the WebSocket and relays stdin and messages until it closes."""
    http2: bool | str = "auto" if args.http2 == "auto" else args.http2 == "on"
    try:
        ws = await connect(
            args.uri,
            ssl=_ssl_context(args),
            subprotocols=args.subprotocol or None,
            additional_headers=headers,
            origin=args.origin,
            http2=http2,
        )
    except (OSError, InvalidHandshake, asyncio.TimeoutError, ValueError) as exc:
        print(f"Failed to connect to {args.uri}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1

    over = "HTTP/2 (RFC 8441)" if ws.http_version == "2" else f"HTTP/{ws.http_version}"
    chosen = f", subprotocol {ws.subprotocol}" if ws.subprotocol else ""
    console = _Console(sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty())
    console.end(f"Connected to {args.uri} over {over}{chosen}")
    console.prompt()

    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_stdin, args=(loop, lines), daemon=True).start()
    stop = asyncio.Event()
    receiving = asyncio.ensure_future(_receive(ws, console))
    with _on_sigint(loop, stop):
        while not receiving.done():
            line_ready = asyncio.ensure_future(lines.get())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {line_ready, stopped, receiving}, return_when=asyncio.FIRST_COMPLETED
            )
            stopped.cancel()
            if not line_ready.done():
                line_ready.cancel()
                break  # Ctrl-C, or the server closed
            line = line_ready.result()
            if line is None or stop.is_set():
                break  # end of input
            try:
                await ws.send(line)
            except ConnectionClosed:
                break
            console.prompt()
        # Messages that arrive during the closing handshake are still shown.
        await ws.close(1000)
        closed = await receiving
    console.end(describe_close(closed))
    return 0 if isinstance(closed, ConnectionClosedOK) else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if urlsplit(args.uri).scheme not in ("ws", "wss"):
        parser.error(f"not a ws:// or wss:// URI: {args.uri}")
    if urlsplit(args.uri).scheme == "ws" and (args.insecure or args.cafile):
        parser.error("--insecure and --cafile apply to wss:// URIs")
    headers = _headers(args.header, parser)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        return asyncio.run(run(args, headers))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
