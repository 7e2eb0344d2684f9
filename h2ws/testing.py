"""A pytest plugin: an h2ws server (and blocking clients) for your tests.

Installing h2ws registers it (the ``pytest11`` entry point ``h2ws``; turn it
off with ``-p no:h2ws``). It adds no autouse fixture and loads nothing heavy.

Servers run in a background thread with their own event loop, so the fixtures
work from synchronous tests and from async tests under any runner
(pytest-asyncio, anyio, a plain asyncio.run()...): a test talks to the
server over a real loopback socket, never through shared asyncio objects.

Fixtures (details in docs/testing.md and ``pytest --fixtures``):

- ``h2ws_server`` / ``h2ws_asgi_server`` (function scope): a running server
  for the ``h2ws_handler`` fixture (an echo handler unless you override it)
  or the ``h2ws_asgi_app`` fixture (yours to define). Options come from
  ``@pytest.mark.h2ws(tls=True, ...)`` and from indirect parametrization
  with a dict.
- ``h2ws_server_factory`` (function scope): ``factory(handler, tls=...)`` or
  ``factory(app=app, ...)`` starts more servers; all stop at teardown.
- ``h2ws_tls_cert`` (session scope): a self-signed certificate for
  ``localhost``, ``127.0.0.1`` and ``::1`` (paths and SSL contexts).
- ``h2ws_client`` (function scope): ``h2ws_client(server, "/path", http2=...)``
  opens a ``BlockingWebSocket`` for synchronous tests.

Without pytest fixtures: ``start_server()``, ``generate_certificate()``,
``BlockingClient``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import ipaddress
import shutil
import ssl
import subprocess
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pytest

from .client import H2ClientConnection
from .client import connect as _connect
from .exceptions import ClientDisconnected, ConnectionClosed, ConnectionClosedOK
from .server import Handler, Server, serve
from .websocket import WebSocket

__all__ = [
    "BlockingClient",
    "BlockingWebSocket",
    "RunningServer",
    "ServerFactory",
    "TLSCertificate",
    "echo",
    "generate_certificate",
    "start_server",
]

T = TypeVar("T")

#: Seconds a blocking call (start, stop, send, recv...) waits by default.
DEFAULT_TIMEOUT = 10.0
#: Names the generated certificate is valid for.
CERT_HOSTS = ("localhost", "127.0.0.1", "::1")


async def echo(ws: WebSocket) -> None:
    """The default handler: sends every message back."""
    async for message in ws:
        await ws.send(message)


# -- a certificate --------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSCertificate:
    """A self-signed certificate and its key, as PEM files."""

    certfile: Path
    keyfile: Path

    @property
    def cafile(self) -> Path:
        """What a client trusts: the certificate itself (it is self-signed)."""
        return self.certfile

    def server_context(self) -> ssl.SSLContext:
        """A new server-side context with this certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A new client-side context that trusts this certificate (and only it)."""
        return ssl.create_default_context(cafile=str(self.certfile))


def generate_certificate(
    directory: str | Path, hosts: tuple[str, ...] = CERT_HOSTS, *, backend: str = "auto"
) -> TLSCertificate:
    """Writes ``cert.pem`` and ``key.pem`` (EC P-256, valid 30 days, a day
    back-dated) for `hosts` into `directory`.

    ``backend``: ``"cryptography"`` (the package), ``"openssl"`` (the
    command), or ``"auto"``: the package if importable, else the command.
    Raises ``RuntimeError`` when neither is available.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    cert = TLSCertificate(out / "cert.pem", out / "key.pem")
    if backend == "auto":
        try:
            import cryptography  # noqa: F401
        except ImportError:
            backend = "openssl"
        else:
            backend = "cryptography"
    if backend == "cryptography":
        _generate_with_cryptography(cert, hosts)
    elif backend == "openssl":
        _generate_with_openssl(cert, hosts)
    else:
        raise ValueError(f"unknown certificate backend {backend!r}")
    return cert


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _generate_with_cryptography(cert: TLSCertificate, hosts: tuple[str, ...]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h2ws test certificate")])
    names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(h)) if _is_ip(h) else x509.DNSName(h) for h in hosts
    ]
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    built = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert.keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert.certfile.write_bytes(built.public_bytes(serialization.Encoding.PEM))


def _generate_with_openssl(cert: TLSCertificate, hosts: tuple[str, ...]) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError(
            "h2ws.testing needs the cryptography package or the openssl command "
            "to make a TLS certificate"
        )
    san = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in hosts)
    # -addext needs OpenSSL 1.1.1 or later.
    command = [
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "30", "-subj", "/CN=h2ws test certificate",
        "-addext", f"subjectAltName={san}", "-addext", "extendedKeyUsage=serverAuth",
        "-keyout", str(cert.keyfile), "-out", str(cert.certfile),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl could not make a certificate: {done.stderr.strip()}")


# -- an event loop in a thread ----------------------------------------------------------------


class _LoopThread:
    """An event loop running in a daemon thread; coroutines are submitted
    from other threads with ``run()``."""

    def __init__(self, name: str, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self._factory = loop_factory
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def _main(self) -> None:
        try:
            loop = self._loop = self._factory()
            asyncio.set_event_loop(loop)
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = DEFAULT_TIMEOUT) -> T:
        """Runs `coro` on the loop and returns its result; ``TimeoutError``
        (after cancelling it) when it takes longer than `timeout`."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no result within {timeout} s") from None

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Cancels what still runs on the loop, stops it and joins the thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(TimeoutError, RuntimeError):
            self.run(self._cancel_all(), timeout)
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    async def _cancel_all(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.loop.shutdown_asyncgens()


def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if loop == "asyncio":
        return asyncio.new_event_loop
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    raise ValueError(f'loop must be "asyncio" or "uvloop", not {loop!r}')


# -- a server -------------------------------------------------------------------------------


class RunningServer:
    """An h2ws server listening on loopback, run by ``start_server()``.

    ``url`` (``http://127.0.0.1:PORT`` or ``https://...``) and ``ws_url``
    (``ws://`` or ``wss://``) have no trailing slash: append the path.
    ``errors`` collects the exceptions the handler or the ASGI app raised
    (other than the connection going away); ``raise_errors()`` raises the
    first. ``stop()`` shuts the server down (also on leaving a ``with`` block).
    """

    def __init__(
        self,
        runner: _LoopThread,
        server: Server,
        host: str,
        port: int,
        cert: TLSCertificate | None,
        errors: list[BaseException],
    ) -> None:
        self._runner = runner
        #: The ``h2ws.Server``; it belongs to the server's loop (see ``run()``).
        self.server = server
        self.host = host
        self.port = port
        #: The certificate served, or None for cleartext (h2c and HTTP/1.1).
        self.cert = cert
        self.errors = errors
        self._shared_ssl: ssl.SSLContext | None = None
        self._stopped = False

    @property
    def tls(self) -> bool:
        return self.cert is not None

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self._netloc}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self._netloc}"

    @property
    def client_ssl(self) -> ssl.SSLContext | None:
        """A new client-side SSL context trusting the server's certificate
        (None for a cleartext server). New each time because clients change
        contexts (``h2ws.connect()`` sets its ALPN protocols): keep one and
        pass it to several ``h2ws.connect()`` calls to let them share an
        HTTP/2 connection."""
        return self.cert.client_context() if self.cert is not None else None

    #: The same as ``client_ssl``.
    ssl_context = client_ssl

    def _h2ws_ssl(self) -> ssl.SSLContext | None:
        # The context of connect() and BlockingClient: one per server, so
        # that their WebSockets share HTTP/2 connections.
        if self.cert is not None and self._shared_ssl is None:
            self._shared_ssl = self.cert.client_context()
        return self._shared_ssl

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop (in its own thread)."""
        return self._runner.loop

    def connect(self, path: str = "/", **kwargs: Any) -> _connect:
        """``h2ws.connect()`` to `path` on this server from the caller's event
        loop, trusting its certificate: ``async with server.connect("/chat",
        http2=True) as ws``. Keywords go to ``h2ws.connect()``."""
        if self.tls:
            kwargs.setdefault("ssl", self._h2ws_ssl())
        return _connect(self.ws_url + path, **kwargs)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = DEFAULT_TIMEOUT) -> T:
        """Runs `coro` on the server's loop (to look at ``self.server`` or
        objects the handler made) and returns its result."""
        return self._runner.run(coro, timeout)

    def raise_errors(self) -> None:
        """Raises the first exception the handler or app raised, if any."""
        if self.errors:
            raise self.errors[0]

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Closes the server gracefully (WebSockets get 1001) and ends its
        thread; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        server = self.server

        async def close() -> None:
            server.close()
            await server.wait_closed()

        try:
            with contextlib.suppress(TimeoutError):
                self._runner.run(close(), timeout)
        finally:
            self._runner.stop(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningServer {self.ws_url}>"


def _quiet(exc: BaseException) -> bool:
    """The peer went away: not the handler's fault."""
    return isinstance(exc, (ConnectionClosed, ClientDisconnected))


def _recording_handler(handler: Handler, errors: list[BaseException]) -> Handler:
    async def handle(ws: WebSocket) -> None:
        try:
            await handler(ws)
        except Exception as exc:
            if not _quiet(exc):
                errors.append(exc)
            raise

    return handle


def _recording_app(app: Any, errors: list[BaseException]) -> Any:
    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except Exception as exc:
            # An app may refuse the lifespan scope; h2ws copes with that.
            if scope.get("type") != "lifespan" and not _quiet(exc):
                errors.append(exc)
            raise

    return asgi


def start_server(
    handler: Handler | None = None,
    *,
    app: Callable[..., Awaitable[None]] | None = None,
    tls: bool = False,
    cert: TLSCertificate | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    loop: str = "asyncio",
    timeout: float = DEFAULT_TIMEOUT,
    **kwargs: Any,
) -> RunningServer:
    """Starts ``h2ws.serve(handler)`` or, with ``app=``, ``h2ws.asgi.serve_asgi(app)``
    in a new thread with its own event loop (``loop="asyncio"`` or ``"uvloop"``)
    and returns once it listens on `host` and `port` (0: a free one).

    ``tls=True`` serves `cert` (a new one in a temporary directory if None)
    with ALPN ``h2, http/1.1``; cleartext servers speak h2c (prior knowledge)
    and HTTP/1.1. Other keywords go to ``serve()`` / ``serve_asgi()``
    (``subprotocols``, ``process_request``, ``origins``, ``lifespan``, every
    ``ServerConfig`` field...). Call ``stop()`` on the result when done.
    """
    if (handler is None) == (app is None):
        raise TypeError("start_server() needs a handler or app=, not both")
    if tls and cert is None:
        import tempfile

        cert = generate_certificate(tempfile.mkdtemp(prefix="h2ws-test-cert-"))
    if not tls:
        cert = None
    errors: list[BaseException] = []
    ctx = cert.server_context() if cert is not None else None

    async def start() -> Server:
        if app is not None:
            from .asgi import serve_asgi

            return await serve_asgi(_recording_app(app, errors), host, port, ssl=ctx, **kwargs)
        assert handler is not None
        return await serve(_recording_handler(handler, errors), host, port, ssl=ctx, **kwargs)

    runner = _LoopThread("h2ws-test-server", _loop_factory(loop))
    try:
        server = runner.run(start(), timeout)
    except BaseException:
        runner.stop(timeout)
        raise
    bound = server.sockets[0].getsockname()
    return RunningServer(runner, server, host, bound[1], cert, errors)


class ServerFactory:
    """What the ``h2ws_server_factory`` fixture returns: call it to start a
    server (the arguments of ``start_server()``; ``tls=True`` uses the
    session's certificate); every server stops at teardown."""

    def __init__(self, cert: Callable[[], TLSCertificate]) -> None:
        self._cert = cert
        self.servers: list[RunningServer] = []

    def __call__(
        self, handler: Handler | None = None, *, tls: bool = False, **kwargs: Any
    ) -> RunningServer:
        if tls:
            kwargs.setdefault("cert", self._cert())
        server = start_server(handler, tls=tls, **kwargs)
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        """Stops every server, then raises the first handler error of any."""
        servers, self.servers = self.servers, []
        for server in servers:
            server.stop()
        for server in servers:
            server.raise_errors()


# -- a blocking client ----------------------------------------------------------------------


class BlockingWebSocket:
    """An ``h2ws.WebSocket`` driven from synchronous code; its loop runs in
    the ``BlockingClient``'s thread. Every call waits at most `timeout`
    seconds (``TimeoutError``) and raises what the async method raises."""

    def __init__(self, runner: _LoopThread, ws: WebSocket, timeout: float) -> None:
        self._runner = runner
        #: The async WebSocket (use it only on the client's loop).
        self.websocket = ws
        self.timeout = timeout

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        return self._runner.run(coro, self.timeout if timeout is None else timeout)

    @property
    def http_version(self) -> str:
        """``"2"`` over HTTP/2 (RFC 8441), ``"1.1"`` otherwise."""
        return self.websocket.http_version

    @property
    def subprotocol(self) -> str | None:
        return self.websocket.subprotocol

    @property
    def response(self) -> Any:
        """The server's answer to the opening handshake (``h2ws.Response``)."""
        return self.websocket.response

    @property
    def close_code(self) -> int | None:
        return self.websocket.close_code

    @property
    def close_reason(self) -> str | None:
        return self.websocket.close_reason

    def send(self, message: str | bytes, timeout: float | None = None) -> None:
        self._run(self.websocket.send(message), timeout)

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message; ``ConnectionClosedOK``/``ConnectionClosedError``
        once closed, ``TimeoutError`` when none comes in time."""
        return self._run(self.websocket.recv(), timeout)

    def ping(self, timeout: float | None = None) -> float:
        """Sends a ping and waits for its pong; returns the round trip in seconds."""

        async def ping() -> float:
            return await (await self.websocket.ping())

        return self._run(ping(), timeout)

    def close(self, code: int = 1000, reason: str = "", timeout: float | None = None) -> None:
        self._run(self.websocket.close(code, reason), timeout)

    def __iter__(self) -> Iterator[str | bytes]:
        """The messages until a normal closure."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    def __enter__(self) -> BlockingWebSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BlockingClient:
    """Opens ``BlockingWebSocket``s; what the ``h2ws_client`` fixture returns.

    All its WebSockets share one event loop thread (so ``connect()`` pools
    HTTP/2 connections as usual); ``close()`` closes them and ends it.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, loop: str = "asyncio") -> None:
        self.timeout = timeout
        self._runner = _LoopThread("h2ws-test-client", _loop_factory(loop))
        self._open: list[BlockingWebSocket] = []
        self._h2: set[H2ClientConnection] = set()

    def __call__(
        self, target: RunningServer | str, path: str = "", **kwargs: Any
    ) -> BlockingWebSocket:
        """Opens a WebSocket to ``target`` (a ``RunningServer``, whose
        certificate is trusted, or a ws:// / wss:// URI) plus `path`; keywords
        go to ``h2ws.connect()`` (``http2``, ``subprotocols``,
        ``additional_headers``, ``origin``, ``ssl``...)."""
        if isinstance(target, RunningServer):
            uri = target.ws_url + (path or "/")
            if target.tls:
                kwargs.setdefault("ssl", target._h2ws_ssl())
        else:
            uri = target + path

        async def open_ws() -> WebSocket:
            return await _connect(uri, **kwargs)

        ws = BlockingWebSocket(
            self._runner, self._runner.run(open_ws(), self.timeout), self.timeout
        )
        self._open.append(ws)
        carrier = ws.websocket.transport._carrier
        if isinstance(carrier, H2ClientConnection):
            self._h2.add(carrier)
        return ws

    def close(self) -> None:
        for ws in self._open:
            with contextlib.suppress(Exception):
                ws.close()
        self._open.clear()
        with contextlib.suppress(TimeoutError):
            self._runner.run(self._close_h2(), self.timeout)
        self._runner.stop(self.timeout)

    async def _close_h2(self) -> None:
        # The pool closes idle HTTP/2 connections on its own, but only soon
        # after: wait until they are closed (TLS included) before the loop
        # ends, or their sockets would be left open.
        conns, self._h2 = self._h2, set()
        for conn in conns:
            conn.close()
        if conns:
            await asyncio.wait([conn.closed for conn in conns])

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- the pytest plugin ----------------------------------------------------------------------

_CERT_KEY = pytest.StashKey[TLSCertificate]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "h2ws(tls=False, loop='asyncio', **serve_options): options of the h2ws_server and "
        "h2ws_asgi_server fixtures",
    )


def _session_cert(config: pytest.Config, factory: pytest.TempPathFactory) -> TLSCertificate:
    """One certificate per session (per xdist worker), made when first asked for."""
    cert = config.stash.get(_CERT_KEY, None)
    if cert is None:
        cert = config.stash[_CERT_KEY] = generate_certificate(factory.mktemp("h2ws-cert"))
    return cert


@pytest.fixture(scope="session")
def h2ws_tls_cert(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A self-signed certificate for localhost, 127.0.0.1 and ::1 (session
    scope): ``.certfile``, ``.keyfile``, ``.cafile`` (paths),
    ``.server_context()``, ``.client_context()``."""
    return _session_cert(pytestconfig, tmp_path_factory)


@pytest.fixture
def h2ws_server_factory(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerFactory]:
    """Starts servers: ``h2ws_server_factory(handler, tls=False, **serve_options)``
    or ``h2ws_server_factory(app=asgi_app, ...)`` returns a ``RunningServer``
    (``.url``, ``.ws_url``, ``.port``, ``.client_ssl``, ``.connect()``).
    Function scope; the servers stop at teardown, which then raises the
    first exception a handler or app raised."""
    factory = ServerFactory(lambda: _session_cert(pytestconfig, tmp_path_factory))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def h2ws_handler() -> Handler:
    """The handler ``h2ws_server`` serves: an echo. Override this fixture
    (same name, in your module or conftest.py) to serve your own."""
    return echo


@pytest.fixture
def h2ws_asgi_app() -> Any:
    """The ASGI application ``h2ws_asgi_server`` serves: define a fixture of
    this name that returns yours."""
    pytest.fail("h2ws_asgi_server needs an h2ws_asgi_app fixture returning the app", False)


def _server_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    marker = request.node.get_closest_marker("h2ws")
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("@pytest.mark.h2ws takes keyword arguments only")
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if param is not None:
        if not isinstance(param, dict):
            raise pytest.UsageError(f"parametrize {request.fixturename} with dicts of options")
        options.update(param)
    return options


@pytest.fixture
def h2ws_server(
    request: pytest.FixtureRequest, h2ws_server_factory: ServerFactory, h2ws_handler: Handler
) -> RunningServer:
    """A running server for the ``h2ws_handler`` fixture (an echo by default).
    Options (``tls=True``, ``loop="uvloop"``, ``subprotocols=[...]``, any
    ``serve()`` keyword) come from ``@pytest.mark.h2ws(...)`` and from
    ``@pytest.mark.parametrize("h2ws_server", [{...}], indirect=True)``.
    Function scope."""
    return h2ws_server_factory(h2ws_handler, **_server_options(request))


@pytest.fixture
def h2ws_asgi_server(
    request: pytest.FixtureRequest, h2ws_server_factory: ServerFactory, h2ws_asgi_app: Any
) -> RunningServer:
    """A running ASGI server (``h2ws.asgi.serve_asgi``) for the
    ``h2ws_asgi_app`` fixture, with the options of ``h2ws_server`` plus
    ``lifespan="auto"|"on"|"off"``. Function scope."""
    return h2ws_server_factory(app=h2ws_asgi_app, **_server_options(request))


@pytest.fixture
def h2ws_client() -> Iterator[BlockingClient]:
    """Opens blocking WebSockets for synchronous tests:
    ``ws = h2ws_client(h2ws_server, "/path", http2=False)``, then
    ``ws.send()``, ``ws.recv()``, ``ws.http_version``... Function scope; open
    WebSockets are closed at teardown. (Async tests use
    ``await server.connect(...)`` on their own loop instead.)"""
    client = BlockingClient()
    try:
        yield client
    finally:
        client.close()
