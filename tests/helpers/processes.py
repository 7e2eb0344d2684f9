"""Example programs run as processes in tests."""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import sys
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
