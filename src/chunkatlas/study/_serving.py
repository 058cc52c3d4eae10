"""HTTP servers for stores, on loopback, that log every request: bytes sent per request is what
the chunk-size study counts.

``python -m chunkatlas.study._serving ROOT --log FILE`` serves ROOT with aiohttp's static file
handling (Range requests included) and prints its URL; :func:`nginx_serving` serves the same with
nginx and the same log format.  Both can answer over an emulated :class:`Network` (latency and
bandwidth), since loopback makes every request free.

Each log line is a JSON object: method, path, status, bytes (body bytes sent), range (the Range
header), end (when the answer went out, Unix seconds) and seconds (how long the server took
over it, emulated delay included): from end and seconds, how many requests were in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chunkatlas.errors import ChunkatlasError

MARK_PREFIX = "/__mark__/"  # requests that separate patterns in the log; never delayed


@dataclass(frozen=True)
class Network:
    """An emulated network between the reader and the server.

    ``latency_ms`` passes before each answer starts (time to first byte); ``bandwidth_mbps``
    (megabits per second, None: loopback speed) paces each response's body on its own, as one
    TCP stream would: concurrent responses each get the full bandwidth, so the reader's own
    concurrency still pays off, as it does against an object store.  Only reads (GET, HEAD)
    are slowed; marker requests never are.

    aiohttp and the S3 server pay a response's whole delay, latency plus transfer, before its
    first byte; nginx paces the body itself (:func:`nginx_network`).  A reader that waits for
    whole bodies, as zarr's does, sees the same time either way.
    """

    latency_ms: float = 0
    bandwidth_mbps: float | None = None

    @classmethod
    def from_config(cls, config) -> Network:
        """The network of the config's ``remote`` section."""
        return cls(config["remote"]["latency_ms"], config["remote"]["bandwidth_mbps"])

    def __post_init__(self) -> None:
        if not 0 <= self.latency_ms < float("inf"):
            raise ChunkatlasError(f"network latency_ms must be 0 or more, got {self.latency_ms}")
        if self.bandwidth_mbps is not None and not 0 < self.bandwidth_mbps < float("inf"):
            raise ChunkatlasError(
                f"network bandwidth_mbps must be above 0 (or None), got {self.bandwidth_mbps}"
            )

    @property
    def bytes_per_second(self) -> float | None:
        return None if self.bandwidth_mbps is None else self.bandwidth_mbps * 1e6 / 8

    def seconds(self, body_bytes: int) -> float:
        """How long an answer with ``body_bytes`` takes to arrive: latency plus transfer."""
        rate = self.bytes_per_second
        return self.latency_ms / 1000 + (body_bytes / rate if rate else 0.0)

    def arguments(self) -> list[str]:
        """Command-line options of the server subprocesses (see :func:`add_network_arguments`)."""
        args = ["--latency-ms", repr(self.latency_ms)]
        if self.bandwidth_mbps is not None:
            args += ["--bandwidth-mbps", repr(self.bandwidth_mbps)]
        return args


LOOPBACK = Network()  # no emulation: what loopback gives

# A public object store read from outside its data centre.  Latency: AWS's S3 performance
# whitepaper ("Timeouts and retries for latency-sensitive applications") gives median latencies
# of small GETs (< 512 KB) "often in the range of tens of milliseconds"; 30 ms sits there.
# Bandwidth: a cautious guess for one TCP stream over the internet, below what AWS suggests
# planning per connection inside a region (of the order of 85-90 MB/s, ~700 Mbit/s); 160 Mbit/s
# is 20 MB/s.  Neither number is a measurement of any particular service.
OBJECT_STORE = Network(latency_ms=30, bandwidth_mbps=160)


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--bandwidth-mbps", type=float, default=None)


def network_from(args: argparse.Namespace) -> Network:
    return Network(args.latency_ms, args.bandwidth_mbps)


class LogWriter:
    """Appends one JSON line per answered request; safe to call from a server's threads."""

    def __init__(self, path: str | os.PathLike) -> None:
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 - open for the server's life
        self._lock = threading.Lock()

    def write(
        self, method: str, path: str, status: int, sent: int, byte_range: str, started: float
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
        }
        with self._lock:
            self._file.write(json.dumps(entry) + "\n")


def make_app(root: Path, log_path: Path, middlewares: Sequence = (), network: Network = LOOPBACK):
    """The aiohttp app serving ``root`` over ``network``; ``middlewares`` may change answers
    (the tests' faults)."""
    from aiohttp import web

    log = LogWriter(log_path)

    def record(request, status: int, sent: int, started: float | None = None) -> None:
        range_ = request.headers.get("Range", "")
        log.write(request.method, request.path, status, sent, range_, started or time.time())

    async def on_prepare(request, response) -> None:
        # Called once headers are final, before they are sent: the body length is known (the
        # Content-Length; none for HEAD), so the whole emulated delay is paid here, before the
        # first byte.  A reader waits for whole bodies, so it sees the same time as if the body
        # itself were paced, and aiohttp's own static file handling stays in charge.
        started = time.time()
        sent = 0 if request.method == "HEAD" else response.content_length or 0
        if not request.path.startswith(MARK_PREFIX):
            await asyncio.sleep(network.seconds(sent))
        record(request, response.status, sent, started)

    async def handle(request):
        if request.path.startswith(MARK_PREFIX):
            return web.Response(status=204)
        target = served_file(request)
        if target is None:
            return web.Response(status=404)
        return web.FileResponse(target)

    app = web.Application(middlewares=list(middlewares))
    app["root"] = root
    app["record"] = record
    app.on_response_prepare.append(on_prepare)
    app.router.add_route("GET", "/{tail:.*}", handle)
    app.router.add_route("HEAD", "/{tail:.*}", handle)
    return app


def served_file(request) -> Path | None:
    """The file under the app's root that ``request`` asks for, or None."""
    root = request.app["root"]
    target = (root / request.path.lstrip("/")).resolve()
    return target if root in target.parents and target.is_file() else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_forever(
    root: Path,
    log_path: Path,
    port: int = 0,
    middlewares: Sequence = (),
    network: Network = LOOPBACK,
) -> None:
    from aiohttp import web

    async def main():
        app = make_app(root.resolve(), log_path, middlewares, network)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        bound = runner.addresses[0][1]
        print(f"http://127.0.0.1:{bound}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


@contextmanager
def aiohttp_serving(
    root: str | os.PathLike,
    log_path: str | os.PathLike,
    *,
    network: Network = LOOPBACK,
    program: Sequence[str] = (sys.executable, "-m", "chunkatlas.study._serving"),
    extra_args: Sequence[str] = (),
    start_timeout: float = 60,
) -> Iterator[str]:
    """Serve ``root`` from a subprocess on a free loopback port; yield its base URL.

    ``program`` is the server's command line before its arguments: this module, or one that
    calls :func:`serve_forever` with middlewares of its own (``extra_args`` are its options).
    """
    args = [*program, str(root), "--log", str(log_path), *network.arguments(), *extra_args]
    with process_serving(args, start_timeout) as url:
        yield url


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


NGINX_CONF = """
{modules}
{user}
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    log_format chunkatlas escape=json
        '{{"method":"$request_method","path":"$uri","status":$status,'
        '"bytes":$body_bytes_sent,"range":"$http_range","end":$msec,"seconds":$request_time}}';
    server {{
        listen 127.0.0.1:{port};
        root {root};
        access_log {log} chunkatlas;
        location {mark} {{ return 204; }}
{network}
    }}
}}
"""
ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")  # Debian's, for echo_sleep
# Latency: the echo module's non-blocking echo_sleep, then an internal redirect to a named
# location that serves the file as usual (Range included; $uri stays the request's).
NGINX_LATENCY = """
        location / {{ echo_sleep {seconds}; echo_exec @file; }}
        location @file {{ }}"""


def nginx_network(network: Network) -> tuple[str, str]:
    """The nginx directives for ``network``: (main-context modules, server-context lines).

    Bandwidth is nginx's limit_rate, per request like :class:`Network`'s; nginx paces with a
    granularity of its own, so a response may finish a few ms sooner than bytes / bandwidth.
    Latency is rounded to whole milliseconds and needs the echo module (Debian package
    libnginx-mod-http-echo, a dependency of nginx-light).
    """
    lines = ""
    if network.bytes_per_second:
        lines += f"        limit_rate {round(network.bytes_per_second)};"
    milliseconds = round(network.latency_ms)  # echo_sleep takes at most 3 decimals of seconds
    if not milliseconds:
        return "", lines
    if not ECHO_MODULE.exists():
        raise ChunkatlasError(
            f"nginx cannot add latency ({network.latency_ms:g} ms) without {ECHO_MODULE} "
            "(Debian package libnginx-mod-http-echo); use remote.server: aiohttp"
        )
    seconds = f"{milliseconds / 1000:.3f}"
    return f"load_module {ECHO_MODULE};", lines + NGINX_LATENCY.format(seconds=seconds)


@contextmanager
def nginx_serving(
    root: str | os.PathLike,
    log_path: str | os.PathLike,
    *,
    network: Network = LOOPBACK,
    start_timeout: float = 30,
) -> Iterator[str]:
    """Serve ``root`` with nginx (Debian package) on a free loopback port over ``network``
    (:func:`nginx_network`); yield its base URL."""
    modules, network_lines = nginx_network(network)
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        raise ChunkatlasError(
            "nginx not found (install the Debian package nginx), or use remote.server: aiohttp"
        )
    with tempfile.TemporaryDirectory(prefix="chunkatlas-nginx-") as tmp:
        port = free_port()
        conf = Path(tmp) / "nginx.conf"
        # As root, nginx's workers would drop to www-data and could not read private dirs.
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(
            NGINX_CONF.format(
                modules=modules,
                network=network_lines,
                user=user,
                tmp=tmp,
                port=port,
                root=Path(root).resolve(),
                log=Path(log_path).resolve(),
                mark=MARK_PREFIX,
            )
        )
        server = subprocess.Popen(
            [binary, "-c", str(conf), "-p", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _wait_for_port(port, server, start_timeout)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(server)


def _wait_for_port(port: int, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ChunkatlasError(f"nginx exited at start: {server.stderr.read().strip()[:300]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ChunkatlasError(f"nginx did not listen on port {port} within {timeout:g} s")


SERVERS = {"aiohttp": aiohttp_serving, "nginx": nginx_serving}
BACKENDS = ("http", "s3")


@contextmanager
def serving(kind: str, root, log_path, network: Network = LOOPBACK) -> Iterator[str]:
    """The server the config asks for: "aiohttp" (default, pip only) or "nginx"."""
    if kind not in SERVERS:
        raise ChunkatlasError(f"server {kind!r} is not one of 'aiohttp', 'nginx'")
    with SERVERS[kind](root, log_path, network=network) as url:
        yield url


@contextmanager
def served(
    backend: str, store: Path, log_path: Path, server: str, network: Network
) -> Iterator[tuple[str, str, dict]]:
    """Serve ``store`` and its manifest; yield (store URL, server base URL for the markers,
    storage options for the reader)."""
    if backend == "http":
        with serving(server, store.parent, log_path, network) as base_url:
            yield f"{base_url}/{store.name}", base_url, {}
    elif backend == "s3":
        from chunkatlas.study._s3 import s3_serving

        with s3_serving(store, log_path, network) as (prefix, options):
            yield f"{prefix}/{store.name}", options["endpoint_url"], options
    else:
        raise ChunkatlasError(f"backend {backend!r} is not one of {', '.join(map(repr, BACKENDS))}")


@contextmanager
def served_store(
    backend: str, store: str | os.PathLike, server: str, network: Network
) -> Iterator[tuple[str, dict]]:
    """:func:`served`, its request log in a temporary folder: yield (store URL, storage
    options for the reader)."""
    store = Path(store)
    with tempfile.TemporaryDirectory(prefix="chunkatlas-requests-") as tmp:
        log_path = Path(tmp) / "requests.jsonl"
        log_path.touch()
        with served(backend, store, log_path, server, network) as (url, _, options):
            yield url, options


def argument_parser(prog: str) -> argparse.ArgumentParser:
    """The server's command line: ROOT --log FILE [--port N] [--latency-ms MS]
    [--bandwidth-mbps MBIT]."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    add_network_arguments(parser)
    return parser


def main(argv=None) -> None:
    args = argument_parser("python -m chunkatlas.study._serving").parse_args(argv)
    serve_forever(args.root, args.log, args.port, network=network_from(args))


if __name__ == "__main__":
    main()
