"""Server processes on loopback: each logs one JSON line per answered request (method, path,
status, bytes (body bytes sent), range (the Range header), end (when the answer went out, Unix
seconds), seconds (how long the server took over it, emulated delay included: from end and
seconds, how many requests were in flight) and, from aiohttp and moto, delay (the emulated
seconds it paid)), prints its URL on its first line, and is stopped with the context that
started it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from chunkatlas.errors import ChunkatlasError


class LogWriter:
    """Appends one JSON line per answered request; safe to call from a server's threads."""

    def __init__(self, path: str | os.PathLike) -> None:
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 - open for the server's life
        self._lock = threading.Lock()

    def write(
        self,
        method: str,
        path: str,
        status: int,
        sent: int,
        byte_range: str,
        started: float,
        delay: float = 0.0,
    ) -> None:
        end = time.time()
        entry = {
            "method": method,
            "path": path,
            "status": status,
            "bytes": sent,
            "range": byte_range,
            "end": round(end, 6),
            "seconds": round(end - started, 6),
            "delay": round(delay, 6),
        }
        with self._lock:
            self._file.write(json.dumps(entry) + "\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def process_serving(
    args: Sequence[str], start_timeout: float = 60, name: str = "HTTP server"
) -> Iterator[str]:
    """Run a server subprocess that prints its base URL on its first line; yield the URL and
    stop the server on the way out."""
    server = subprocess.Popen(list(args), stdout=subprocess.PIPE, text=True)
    try:
        yield _read_url(server, start_timeout, name)
    finally:
        stop_process(server)


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """End a server process: terminate, then kill if it has not exited within ``timeout``;
    close its pipes."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def _read_url(server: subprocess.Popen, timeout: float, name: str) -> str:
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline and not line:
        if server.poll() is not None:
            raise ChunkatlasError(f"{name} exited with code {server.returncode} at start")
        line = server.stdout.readline().strip()
    if not line.startswith("http://"):
        raise ChunkatlasError(f"{name} did not start within {timeout:g} s")
    return line


def wait_for_port(port: int, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ChunkatlasError(f"nginx exited at start: {server.stderr.read().strip()[:300]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ChunkatlasError(f"nginx did not listen on port {port} within {timeout:g} s")
