"""A real ``redis-server`` for tests: on a free loopback port, in a temporary directory, with
no persistence (so a restart loses every key, as an unpersisted production Redis does).

tests/ is not on ``sys.path``: a test module loads this file by its path and binds the
fixtures ``redis_server`` and ``redis_url_down`` to module names (see
tests/test_redis_limiter.py). Without the binary a test that needs it is skipped, except under
``CI=true``, where it fails: CI installs ``redis-server`` (``.ci/run``), so a missing one is a
broken run, not a reason to skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT = 10.0  # seconds for redis-server to answer PING


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ping(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis answers PING on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; :meth:`restart` keeps the port and loses the data."""

    def __init__(self, binary: str, directory: Path, port: int | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.port = port if port is not None else free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            raise RuntimeError("redis-server is already running")
        log = self.directory / "redis.log"
        # Opened for the child only: Popen duplicates it, so this handle can close at once.
        with open(log, "ab") as output:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.directory),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not ping(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"redis-server did not start on port {self.port}: {log.read_text()[-2000:]}"
                )
            time.sleep(0.01)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def require_redis_server() -> str:
    """The redis-server binary; skips the test without one, or fails it under CI."""
    binary = redis_server_binary()
    if binary is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}; CI must run the Redis tests, see .ci/run")
        pytest.skip(message)
    return binary


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server of this test alone."""
    server = RedisServer(require_redis_server(), tmp_path)
    for attempt in range(3):  # another process may take the free port before redis-server
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
            server.port = free_port()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url_down() -> str:
    """A Redis URL where nothing listens (a port that was free a moment ago)."""
    return f"redis://127.0.0.1:{free_port()}/0"
