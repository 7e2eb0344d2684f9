"""Example programs run as processes in tests."""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .certs import cert_files

ROOT = Path(__file__).resolve().parents[2]
ECHO_SERVER = ROOT / "examples" / "echo_server.py"


class EchoServerProcess:
    """examples/echo_server.py on --port 0, reading the port it prints."""

    def __init__(self, tls: bool) -> None:
        args = [sys.executable, str(ECHO_SERVER), "--host", "127.0.0.1", "--port", "0",
                "--log-level", "warning"]
        if tls:
            certfile, keyfile = cert_files()
            args += ["--certfile", certfile, "--keyfile", keyfile]
        self.tls = tls
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        self.port = self._read_port(timeout=20.0)

    def _read_port(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                if not sel.select(end - time.monotonic()):
                    continue
                line = self.proc.stdout.readline()
                if not line:
                    break
                m = re.search(r"wss?://[^:/]+:(\d+)/", line)
                if m:
                    scheme = "wss" if self.tls else "ws"
                    assert line.split("://")[0].endswith(scheme), line
                    return int(m.group(1))
        finally:
            sel.close()
        self.proc.kill()
        _, err = self.proc.communicate(timeout=5)
        raise AssertionError(f"echo server printed no port; stderr: {err}")

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def stop(self) -> tuple[int, str]:
        """SIGTERM: the example shuts down gracefully and exits 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


class CLIServerProcess:
    """The ``h2ws MODULE:APP`` command (as ``python -m h2ws``, from the tree's
    root) on a free port over TLS; its log goes to a file, the port is read
    from its "serving ... on https://HOST:PORT" line. ``stop()`` sends SIGTERM."""

    def __init__(self, app: str, *args: str, timeout: float = 20.0) -> None:
        certfile, keyfile = cert_files()
        self._final_log = ""
        fd, self.log_path = tempfile.mkstemp(prefix="h2ws-cli-", suffix=".log")
        with open(fd, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "h2ws", app, "--host", "127.0.0.1", "--port", "0",
                 "--certfile", certfile, "--keyfile", keyfile, *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )
        try:
            m = self.wait_log(r"serving \S+ on https://[^:]+:(\d+)", timeout)
        except BaseException:
            self.stop()
            raise
        self.port = int(m.group(1))
        self.origin = f"https://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except FileNotFoundError:  # stopped: the log was read then
            return self._final_log

    def wait_log(self, pattern: str, timeout: float = 10.0, since: int = 0) -> re.Match[str]:
        """Waits until the log from offset ``since`` (a ``len(log())`` taken
        earlier) has a match for ``pattern``."""
        end = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log()[since:])
            if m:
                return m
            if self.proc.poll() is not None:
                raise AssertionError(f"h2ws exited ({self.proc.returncode}): {self.log()}")
            if time.monotonic() > end:
                raise AssertionError(f"no {pattern!r} in the h2ws log: {self.log()}")
            time.sleep(0.02)

    def stop(self) -> tuple[int, str]:
        """SIGTERM (graceful shutdown), SIGKILL after 20 s; (exit code, log)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._final_log = self.log()
        Path(self.log_path).unlink(missing_ok=True)
        return self.proc.returncode, self._final_log
