"""HTTP servers for stores, on loopback, that log every request: bytes sent per request is what
the chunk-size study counts.

``python -m chunkatlas.serve ROOT --log FILE`` serves ROOT with aiohttp's static file handling
(Range requests included) and prints its URL.  Fault options make it misbehave on purpose, for
tests of the remote reader: failing a share of requests, a 404 once, a stalled response, wrong
answers to Range requests.  :func:`nginx_serving` serves the same with nginx and the same log
format.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from chunkatlas.errors import ChunkatlasError

MARK_PREFIX = "/__mark__/"


@dataclass
class Faults:
    """Deliberate misbehaviour of the test server."""

    fail_rate: float = 0.0  # share of requests that fail
    fail_mode: str = "503"  # "503" or "reset"
    missing_once: set[str] = field(default_factory=set)  # paths answered 404 the first time
    stall: set[str] = field(default_factory=set)  # paths whose response never comes
    bad_range: str = ""  # "full": 200 with the whole file; "short": 206 with too few bytes
    require_auth: str = ""  # "user:password" for HTTP basic auth; others get 401
    seed: int = 0


def make_app(root: Path, log_path: Path, faults: Faults):
    from aiohttp import web

    rng = random.Random(faults.seed)
    seen_missing: set[str] = set()
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
        path = request.path
        if path.startswith(MARK_PREFIX):
            return web.Response(status=204)
        if faults.require_auth:
            import base64

            expected = "Basic " + base64.b64encode(faults.require_auth.encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.Response(status=401)
        target = (root / path.lstrip("/")).resolve()
        if root not in target.parents or not target.is_file():
            return web.Response(status=404)
        if path in faults.stall:
            await asyncio.sleep(3600)
        if path in faults.missing_once and path not in seen_missing:
            seen_missing.add(path)
            return web.Response(status=404)
        if faults.fail_rate and rng.random() < faults.fail_rate:
            if faults.fail_mode == "reset":
                record(request, 0, 0)
                request.transport.abort()
                raise ConnectionResetError("deliberate reset")
            return web.Response(status=503)
        byte_range = request.http_range
        if faults.bad_range and (byte_range.start is not None or byte_range.stop is not None):
            body = target.read_bytes()
            if faults.bad_range == "full":
                return web.Response(body=body, status=200)
            part = body[byte_range][:-1]  # one byte short, consistently declared
            return web.Response(
                body=part,
                status=206,
                headers={
                    "Content-Range": f"bytes {byte_range.start}-{byte_range.start + len(part) - 1}/"
                    f"{len(body)}"
                },
            )
        return web.FileResponse(target)

    app = web.Application()
    app.on_response_prepare.append(on_prepare)
    app.router.add_route("GET", "/{tail:.*}", handle)
    app.router.add_route("HEAD", "/{tail:.*}", handle)
    return app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_forever(root: Path, log_path: Path, port: int, faults: Faults) -> None:
    from aiohttp import web

    async def main():
        runner = web.AppRunner(make_app(root.resolve(), log_path, faults), access_log=None)
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
    faults: Faults | None = None,
    *,
    start_timeout: float = 60,
) -> Iterator[str]:
    """Serve ``root`` from a subprocess on a free loopback port; yield its base URL."""
    faults = faults or Faults()
    args = [
        sys.executable,
        "-m",
        "chunkatlas.serve",
        str(root),
        "--log",
        str(log_path),
        "--fail-rate",
        str(faults.fail_rate),
        "--fail-mode",
        faults.fail_mode,
        "--bad-range",
        faults.bad_range,
        "--seed",
        str(faults.seed),
        "--require-auth",
        faults.require_auth,
    ]
    for path in sorted(faults.missing_once):
        args += ["--missing-once", path]
    for path in sorted(faults.stall):
        args += ["--stall", path]
    server = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        url = _read_url(server, start_timeout)
        yield url
    finally:
        stop_process(server)


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """End a server process: terminate, then kill if it has not exited within ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


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
def serving(kind: str, root, log_path, faults: Faults | None = None) -> Iterator[str]:
    """The server the config asks for: "aiohttp" (default, pip only) or "nginx"."""
    if kind == "aiohttp":
        with aiohttp_serving(root, log_path, faults) as url:
            yield url
    elif kind == "nginx":
        if faults:
            raise ChunkatlasError("fault injection needs the aiohttp server")
        with nginx_serving(root, log_path) as url:
            yield url
    else:
        raise ChunkatlasError(f"server {kind!r} is not one of 'aiohttp', 'nginx'")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chunkatlas.serve", description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--fail-mode", choices=("503", "reset"), default="503")
    parser.add_argument("--missing-once", action="append", default=[])
    parser.add_argument("--stall", action="append", default=[])
    parser.add_argument("--bad-range", choices=("", "full", "short"), default="")
    parser.add_argument("--require-auth", default="")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    faults = Faults(
        fail_rate=args.fail_rate,
        fail_mode=args.fail_mode,
        missing_once=set(args.missing_once),
        stall=set(args.stall),
        bad_range=args.bad_range,
        require_auth=args.require_auth,
        seed=args.seed,
    )
    serve_forever(args.root, args.log, args.port, faults)


if __name__ == "__main__":
    main()
