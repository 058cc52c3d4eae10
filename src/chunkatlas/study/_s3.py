"""An S3 server on loopback for the chunk-size study: moto's S3 in a subprocess, wrapped so that
every request is logged like the HTTP servers' requests
(:class:`~chunkatlas.study._server_process.LogWriter`) and answered over the same emulated
:class:`~chunkatlas.study._network.Network`.

``python -m chunkatlas.study._s3 --log FILE [--put PATH ...]`` serves an S3 holding PATH (none:
an empty S3) and prints its endpoint; :func:`s3_serving` starts it with a store and its manifest
and yields where to read them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from chunkatlas.study._network import (
    LOOPBACK,
    MARK_PREFIX,
    Network,
    add_network_arguments,
    network_from,
    pacing_after_marker,
)
from chunkatlas.study._server_process import LogWriter, process_serving

BUCKET = "chunkatlas"
REGION = "us-west-2"  # any but us-east-1, which refuses a location constraint
CREDENTIALS = {"key": "chunkatlas", "secret": "chunkatlas"}  # moto accepts any key by default


class LoggedNetwork:
    """WSGI middleware: answers marker requests itself (204) and delays every read (GET, HEAD)
    by the network's latency plus its body's transfer time, before the answer starts; logs
    every request.  Uploads (PUT, POST) are logged but not delayed: they set the study up.
    Markers switch the delay off and on (:func:`pacing_after_marker`)."""

    def __init__(self, app, log: LogWriter, network: Network) -> None:
        self.app, self.log, self.network = app, log, network
        self.paced = True

    def __call__(self, environ, start_response):
        started = time.time()
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if path.startswith(MARK_PREFIX):
            self.paced = pacing_after_marker(environ.get("QUERY_STRING", ""), self.paced)
            start_response("204 No Content", [])
            self.log.write(method, path, 204, 0, "", started)
            return []
        answer: dict = {}
        written: list[bytes] = []

        def capture(status, headers, exc_info=None):
            answer.update(status=status, headers=headers)
            return written.append

        body_parts = self.app(environ, capture)
        try:
            body = b"".join(body_parts)
            body = b"".join(written) + body  # anything given to write() went first
        finally:
            getattr(body_parts, "close", lambda: None)()
        sent = 0 if method == "HEAD" else len(body)
        delay = self.network.seconds(sent) if method in ("GET", "HEAD") and self.paced else 0.0
        time.sleep(delay)
        start_response(answer["status"], answer["headers"])
        status = int(answer["status"].split()[0])
        self.log.write(method, path, status, sent, environ.get("HTTP_RANGE", ""), started, delay)
        return [body]


def put_local(paths: Sequence[Path], root: Path | None = None) -> None:
    """Store each file, or each folder's files, in :data:`BUCKET` under its path relative to
    ``root`` (None: its own name), through moto's backend in this process: no request per
    object, nothing in the log."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(BUCKET, REGION)
    for path in paths:
        files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
        for file in files:
            key = file.relative_to(root or path.parent).as_posix()
            backend.put_object(BUCKET, key, file.read_bytes())


def serve_forever(
    log_path: Path,
    port: int = 0,
    network: Network = LOOPBACK,
    put: Sequence[Path] = (),
    root: Path | None = None,
) -> None:
    """moto's S3 (its own WSGI app and request handler) behind :class:`LoggedNetwork`, holding
    ``put`` (:func:`put_local`, keys relative to ``root``) in :data:`BUCKET` from the start."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    if put:
        put_local(put, root)
    # S3's own app, not moto's DomainDispatcherApplication: that one finds each request's
    # service by listing moto's modules on disk, a few ms of CPU per request, and only S3 is
    # served here (path-style addressing, see storage_options).
    app = LoggedNetwork(create_backend_app("s3"), LogWriter(log_path), network)
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # its line per request: ours is the log
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


def storage_options(endpoint: str) -> dict:
    """s3fs options for the loopback server (path-style addressing: the host is an IP)."""
    return {
        "endpoint_url": endpoint,
        **CREDENTIALS,
        "anon": False,
        "client_kwargs": {"region_name": REGION},
        "config_kwargs": {"s3": {"addressing_style": "path"}},
    }


#: Seconds moto may take to start (it imports its S3 backend first).
START_TIMEOUT = 60


@contextmanager
def s3_serving(
    root: str | os.PathLike,
    log_path: str | os.PathLike,
    network: Network = LOOPBACK,
    stores: Sequence[str | os.PathLike] | None = None,
) -> Iterator[tuple[str, dict]]:
    """Serve the store ``root`` (and the manifest beside it) from an S3 server on loopback;
    yield (URL prefix, s3fs storage options): the store is at ``f"{prefix}/{root.name}"``.
    With ``stores``, serve those stores (each with its manifest) under their paths relative
    to the folder ``root``: store ``s`` is at ``f"{prefix}/{s.relative_to(root)}"``.

    The server puts the stores in its bucket itself before it answers (:func:`put_local`): an
    upload over HTTP took longer than the reads it sets up, and the reader's client is the
    first to talk to the server.
    """
    from chunkatlas.store import manifest_location  # here: the server process needs none of it

    args = [sys.executable, "-m", "chunkatlas.study._s3", "--log", str(log_path)]
    if stores is None:
        stores = [Path(root)]
    else:
        args += ["--root", str(root)]
    for store in map(Path, stores):
        args += ["--put", str(store), "--put", str(manifest_location(store))]
    with process_serving([*args, *network.arguments()], START_TIMEOUT, "S3 server") as endpoint:
        yield f"s3://{BUCKET}", storage_options(endpoint)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chunkatlas.study._s3", description=__doc__)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--put", type=Path, action="append", default=[], help="a file or folder to serve"
    )
    parser.add_argument(
        "--root", type=Path, default=None, help="keys relative to it (default: each --put's parent)"
    )
    add_network_arguments(parser)
    args = parser.parse_args(argv)
    serve_forever(args.log, args.port, network_from(args), args.put, args.root)


if __name__ == "__main__":
    main()
