"""HTTP servers for stores, on loopback, that log every request: bytes sent per request is what
the chunk-size study counts.

``python -m chunkatlas.study._http ROOT --log FILE`` serves ROOT with aiohttp's static file
handling (Range requests included) and prints its URL; :func:`nginx_serving` serves the same with
nginx and the same log format.  Both can answer over an emulated
:class:`~chunkatlas.study._network.Network`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from chunkatlas.errors import ChunkatlasError
from chunkatlas.study._network import (
    LOOPBACK,
    MARK_PREFIX,
    Network,
    add_network_arguments,
    network_from,
    pacing_after_marker,
)
from chunkatlas.study._server_process import (
    LogWriter,
    free_port,
    process_serving,
    stop_process,
    wait_for_port,
)


def make_app(root: Path, log_path: Path, middlewares: Sequence = (), network: Network = LOOPBACK):
    """The aiohttp app serving ``root`` over ``network``; ``middlewares`` may change answers
    (the tests' faults)."""
    from aiohttp import web

    log = LogWriter(log_path)
    pacing = {"on": True}  # markers switch it (pacing_after_marker)

    def record(
        request, status: int, sent: int, started: float | None = None, delay: float = 0.0
    ) -> None:
        range_ = request.headers.get("Range", "")
        log.write(request.method, request.path, status, sent, range_, started or time.time(), delay)

    async def on_prepare(request, response) -> None:
        # Called once headers are final, before they are sent: the body length is known (the
        # Content-Length; none for HEAD), so the whole emulated delay is paid here, before the
        # first byte.  A reader waits for whole bodies, so it sees the same time as if the body
        # itself were paced, and aiohttp's own static file handling stays in charge.
        started = time.time()
        sent = 0 if request.method == "HEAD" else response.content_length or 0
        delay = 0.0
        if not request.path.startswith(MARK_PREFIX) and pacing["on"]:
            delay = network.seconds(sent)
            await asyncio.sleep(delay)
        record(request, response.status, sent, started, delay)

    async def handle(request):
        if request.path.startswith(MARK_PREFIX):
            pacing["on"] = pacing_after_marker(request.query_string, pacing["on"])
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
    program: Sequence[str] = (sys.executable, "-m", "chunkatlas.study._http"),
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
            wait_for_port(port, server, start_timeout)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(server)


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
    args = argument_parser("python -m chunkatlas.study._http").parse_args(argv)
    serve_forever(args.root, args.log, args.port, network=network_from(args))


if __name__ == "__main__":
    main()
