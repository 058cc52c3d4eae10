"""An S3 bucket on loopback for workflow runs that keep every output in an object store: moto's
S3 with its request log (chunkatlas's study server), whose uploads into stores can be slowed
down so that a test can stop a run in the middle of one."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chunkatlas.study._network import LOOPBACK
from chunkatlas.study._s3 import START_TIMEOUT, LoggedNetwork
from chunkatlas.study._server_process import LogWriter, process_serving

#: Keys for the tests' runs: given through Snakemake's variables, so never on a command line.
ACCESS_KEY = "chunkatlas-test-access-key-0f3c"
SECRET_KEY = "chunkatlas-test-secret-key-9b71"


class SlowStoreUploads:
    """WSGI middleware: each upload of an object inside a ``store.zarr`` takes ``seconds``."""

    def __init__(self, app, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "PUT" and "/store.zarr/" in environ.get("PATH_INFO", ""):
            time.sleep(self.seconds)
        return self.app(environ, start_response)


def serve_forever(log_path: Path, slow_uploads: float) -> None:
    import logging

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = LoggedNetwork(
        DomainDispatcherApplication(create_backend_app), LogWriter(log_path), LOOPBACK
    )
    app = SlowStoreUploads(app, slow_uploads)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    print(f"http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


@contextmanager
def bucket_serving(log_path: str | os.PathLike, slow_uploads: float = 0.0) -> Iterator[str]:
    """Start the server; yield its endpoint URL; stop it on the way out."""
    args = [sys.executable, "-m", "tests.support.bucket", "--log", str(log_path)]
    args += ["--slow-uploads", str(slow_uploads)]
    with process_serving(args, START_TIMEOUT, "S3 server") as endpoint:
        yield endpoint


def storage_environment(endpoint: str) -> dict[str, str]:
    """The environment of a Snakemake run against the server: the keys as the plugin's
    variables, the endpoint too (so a run's command line holds neither)."""
    return {
        **os.environ,
        "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": ACCESS_KEY,
        "SNAKEMAKE_STORAGE_S3_SECRET_KEY": SECRET_KEY,
        "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": endpoint,
    }


def bucket_filesystem(endpoint: str):
    """An s3fs view of the server, for the tests' own look at the bucket."""
    import s3fs

    return s3fs.S3FileSystem(
        endpoint_url=endpoint, key=ACCESS_KEY, secret=SECRET_KEY, skip_instance_cache=True
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.bucket", description=__doc__)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--slow-uploads", type=float, default=0.0)
    args = parser.parse_args(argv)
    serve_forever(args.log, args.slow_uploads)


if __name__ == "__main__":
    main()
