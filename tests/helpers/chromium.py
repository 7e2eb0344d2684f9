"""Headless Chromium for interop tests.

``Chromium`` starts the browser with a net-log and drives it over the DevTools
protocol (CDP) on its browser endpoint, with the ``websockets`` sync client:
open a page, evaluate JavaScript until a condition holds, navigate, close.
``Chromium.close()`` asks the browser to exit (so the net-log is complete),
kills its process group if it does not, and returns the net-log as a
``NetLog``. No npm, no Selenium.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from .foreign import foreign_env

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# The flags of the issue: no sandbox (we may run as root), no QUIC (the test is
# about TCP), no background traffic in the net-log, a throw-away profile.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--ignore-certificate-errors",
    "--net-log-capture-mode=IncludeSensitive",  # headers in the net-log
    "--remote-debugging-port=0",  # the port is written to DevToolsActivePort
]


class Chromium:
    """One headless browser with a fresh profile. Use as a context manager
    or call ``close()``; every wait is bounded by ``timeout`` seconds."""

    def __init__(self, timeout: float = 15.0) -> None:
        if CHROMIUM is None:
            raise RuntimeError("chromium is not on PATH")
        self.timeout = timeout
        self.netlog: NetLog | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="h2ws-chromium-"))
        self._netlog_path = self._dir / "netlog.json"
        self._ids = itertools.count(1)
        self._stack = contextlib.ExitStack()
        self._cdp: ClientConnection | None = None
        self._proc = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={self._dir / 'profile'}",
                f"--log-net-log={self._netlog_path}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helpers share its process group: one kill ends all
            env=foreign_env(),
        )
        try:
            self._cdp = self._connect()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> ClientConnection:
        port_file = self._dir / "profile" / "DevToolsActivePort"
        end = time.monotonic() + self.timeout
        while True:
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            if len(lines) >= 2:
                break
            if self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._proc.returncode}")
            if time.monotonic() > end:
                raise TimeoutError("chromium wrote no DevToolsActivePort")
            time.sleep(0.02)
        url = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        return self._stack.enter_context(
            connect(url, max_size=None, open_timeout=self.timeout, proxy=None)
        )

    def call(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> Any:
        """Sends one CDP command and returns its result (events are skipped)."""
        assert self._cdp is not None, "not connected"
        cid = next(self._ids)
        msg: dict[str, Any] = {"id": cid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._cdp.send(json.dumps(msg))
        end = time.monotonic() + self.timeout
        while True:
            reply = json.loads(self._cdp.recv(timeout=max(0.0, end - time.monotonic())))
            if reply.get("id") == cid:
                if "error" in reply:
                    raise RuntimeError(f"CDP {method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> Page:
        """A new tab, attached, navigated to ``url``."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, session["sessionId"], target)
        page.navigate(url)
        return page

    def close(self) -> NetLog:
        """Exits the browser (Browser.close, then SIGKILL to its process group
        if it lingers) and returns its net-log."""
        if self.netlog is not None:
            return self.netlog
        try:
            if self._proc.poll() is None and self._cdp is not None:
                with contextlib.suppress(Exception):  # the reply may never come: it exits
                    self._cdp.send(json.dumps({"id": next(self._ids), "method": "Browser.close"}))
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(self.timeout)
        finally:
            with contextlib.suppress(Exception):
                self._stack.close()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)  # the group we started
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
            try:
                text = self._netlog_path.read_text(errors="replace")
            except FileNotFoundError:
                text = ""
            shutil.rmtree(self._dir, ignore_errors=True)
        self.netlog = NetLog.parse(text)
        return self.netlog

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    """One tab, reached through its flat CDP session."""

    def __init__(self, browser: Chromium, session: str, target: str) -> None:
        self.browser = browser
        self.session = session
        self.target = target

    def close(self) -> None:
        """Closes the tab (the page unloads)."""
        self.browser.call("Target.closeTarget", {"targetId": self.target})

    def navigate(self, url: str) -> None:
        self.browser.call("Page.navigate", {"url": url}, self.session)

    def evaluate(self, expression: str) -> Any:
        result = self.browser.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        """Evaluates ``expression`` until it is truthy; returns that value."""
        end = time.monotonic() + timeout
        while True:
            error: RuntimeError | None = None
            try:
                value = self.evaluate(expression)
            except RuntimeError as exc:  # e.g. the context went away with a navigation
                value, error = None, exc
            if value:
                return value
            if time.monotonic() > end:
                raise TimeoutError(f"{expression!r} still false after {timeout} s ({error})")
            time.sleep(0.05)

    def text(self, element_id: str) -> str | None:
        value = self.evaluate(
            f"(document.getElementById({json.dumps(element_id)}) || {{}}).textContent"
        )
        return None if value is None else str(value)


# -- the net-log ----------------------------------------------------------------


@dataclass
class NetEvent:
    type: str  # e.g. "HTTP2_SESSION_SEND_HEADERS"
    source_type: str  # e.g. "HTTP2_SESSION"
    source_id: int
    phase: str  # "PHASE_BEGIN", "PHASE_END" or "PHASE_NONE"
    time: int
    params: dict[str, Any]

    @property
    def headers(self) -> list[str]:
        """The ``"name: value"`` strings of a headers event."""
        return list(self.params.get("headers", []))


class NetLog:
    """Chromium's ``--log-net-log`` file with numeric codes turned into names."""

    def __init__(self, constants: dict[str, Any], raw_events: list[dict[str, Any]]) -> None:
        types = {v: k for k, v in constants["logEventTypes"].items()}
        sources = {v: k for k, v in constants["logSourceType"].items()}
        phases = {v: k for k, v in constants["logEventPhase"].items()}
        self.events = [
            NetEvent(
                types.get(e["type"], str(e["type"])),
                sources.get(e["source"]["type"], str(e["source"]["type"])),
                int(e["source"]["id"]),
                phases.get(e.get("phase", 0), "PHASE_NONE"),
                int(e["time"]),
                e.get("params", {}),
            )
            for e in raw_events
        ]

    @classmethod
    def parse(cls, text: str) -> NetLog:
        """Parses the file; one whose tail is missing (a browser killed while
        writing it) is read event by event: Chromium writes one per line."""
        try:
            data = json.loads(text)
            return cls(data["constants"], data["events"])
        except (json.JSONDecodeError, KeyError):
            pass
        lines = text.splitlines()
        if not lines or not lines[0].startswith('{"constants":'):
            raise ValueError("not a Chromium net-log (no constants line)")
        constants = json.loads(lines[0].rstrip().rstrip(",") + "}")["constants"]
        events = []
        for line in lines[1:]:
            line = line.strip().rstrip(",")
            if line.endswith("]"):  # the last event
                line = line[:-1]
            if not line.startswith('{"'):
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                break  # cut off mid-event
        return cls(constants, events)

    def of(self, *types: str) -> list[NetEvent]:
        return [e for e in self.events if e.type in types]

    def with_header(self, event_type: str, header: str) -> list[NetEvent]:
        """Events of that type carrying that ``"name: value"`` header (name
        compared without case)."""
        name, _, value = header.partition(": ")
        want = f"{name.lower()}: {value}"
        return [e for e in self.of(event_type) if any(_lower_name(h) == want for h in e.headers)]

    def __iter__(self) -> Iterator[NetEvent]:
        return iter(self.events)


def _lower_name(header: str) -> str:
    name, sep, value = header.partition(": ")
    return f"{name.lower()}{sep}{value}"


def header_value(headers: list[str], name: str) -> str | None:
    """The value of the first ``name: value`` string with that name (any case)."""
    for h in headers:
        n, _, v = h.partition(": ")
        if n.lower() == name.lower():
            return v
    return None
