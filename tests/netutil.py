"""Helpers for tests that start a real server on 127.0.0.1 (mosquitto, sshd)."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, logs: Callable[[], str],
                  timeout: float = 15.0) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; RuntimeError with the logs if ``process`` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start ({process.returncode}): {logs()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s: {logs()}")
