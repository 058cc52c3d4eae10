"""HTTP servers for stores, on loopback, that log every request: bytes sent per request is what
the chunk-size study counts.

``python -m chunkatlas.remote.serve ROOT --log FILE`` serves ROOT with aiohttp's static file
handling (Range requests included) and prints its URL; :func:`nginx_serving` serves the same with
nginx and the same log format.
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
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from chunkatlas.errors import ChunkatlasError

MARK_PREFIX = "/__mark__/"


def make_app(root: Path, log_path: Path, middlewares: Sequence = ()):
    """The aiohttp app serving ``root``; ``middlewares`` may change answers (the tests' faults)."""
    from aiohttp import web

    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the server's life

    def record(request, status: int, sent: int) -> None:
        entry = {
            "method": request.method,
            "path": request.path,
            "status": status,
            "bytes": sent,
            "range": request.headers.get("Range", ""),
        }
        log.write(json.dumps(entry) + "\n")

    async def on_prepare(request, response) -> None:
        # Called once headers are final: the body length sent is the Content-Length.
        record(request, response.status, response.content_length or 0)

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


def serve_forever(root: Path, log_path: Path, port: int = 0, middlewares: Sequence = ()) -> None:
    from aiohttp import web

    async def main():
        runner = web.AppRunner(make_app(root.resolve(), log_path, middlewares), access_log=None)
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
    program: Sequence[str] = (sys.executable, "-m", "chunkatlas.remote.serve"),
    extra_args: Sequence[str] = (),
    start_timeout: float = 60,
) -> Iterator[str]:
    """Serve ``root`` from a subprocess on a free loopback port; yield its base URL.

    ``program`` is the server's command line before its arguments: this module, or one that
    calls :func:`serve_forever` with middlewares of its own (``extra_args`` are its options).
    """
    args = [*program, str(root), "--log", str(log_path), *extra_args]
    server = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        url = _read_url(server, start_timeout)
        yield url
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


def _read_url(server: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline and not line:
        if server.poll() is not None:
            raise ChunkatlasError(f"HTTP server exited with code {server.returncode} at start")
        line = server.stdout.readline().strip()
    if not line.startswith("http://"):
        raise ChunkatlasError(f"HTTP server did not start within {timeout:g} s")
    return line


NGINX_CONF = """
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
        '"bytes":$body_bytes_sent,"range":"$http_range"}}';
    server {{
        listen 127.0.0.1:{port};
        root {root};
        access_log {log} chunkatlas;
        location {mark} {{ return 204; }}
    }}
}}
"""


@contextmanager
def nginx_serving(
    root: str | os.PathLike, log_path: str | os.PathLike, *, start_timeout: float = 30
) -> Iterator[str]:
    """Serve ``root`` with nginx (Debian package) on a free loopback port; yield its base URL."""
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


@contextmanager
def serving(kind: str, root, log_path) -> Iterator[str]:
    """The server the config asks for: "aiohttp" (default, pip only) or "nginx"."""
    if kind == "aiohttp":
        with aiohttp_serving(root, log_path) as url:
            yield url
    elif kind == "nginx":
        with nginx_serving(root, log_path) as url:
            yield url
    else:
        raise ChunkatlasError(f"server {kind!r} is not one of 'aiohttp', 'nginx'")


def argument_parser(prog: str) -> argparse.ArgumentParser:
    """The server's command line: ROOT --log FILE [--port N]."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    return parser


def main(argv=None) -> None:
    args = argument_parser("python -m chunkatlas.remote.serve").parse_args(argv)
    serve_forever(args.root, args.log, args.port)


if __name__ == "__main__":
    main()
