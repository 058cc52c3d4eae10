"""Which server answers a study's reads: the HTTP servers (aiohttp or nginx) or the S3 server,
chosen by backend and config, each with its request log."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from chunkatlas.errors import ChunkatlasError
from chunkatlas.study._http import aiohttp_serving, nginx_serving
from chunkatlas.study._network import LOOPBACK, Network
from chunkatlas.study._s3 import s3_serving

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
    store = Path(store)
    with served_stores(backend, [store], log_path, server, network) as (urls, base_url, options):
        yield urls[store], base_url, options


@contextmanager
def served_stores(
    backend: str, stores: Sequence[Path], log_path: Path, server: str, network: Network
) -> Iterator[tuple[dict[Path, str], str, dict]]:
    """Serve several stores, each with its manifest, from one server (their common folder);
    yield ({store: its URL}, server base URL for the markers, storage options for the
    reader)."""
    stores = [Path(store) for store in stores]
    root = Path(os.path.commonpath([store.parent for store in stores]))
    where = {store: store.relative_to(root).as_posix() for store in stores}
    if backend == "http":
        with serving(server, root, log_path, network) as base_url:
            yield {store: f"{base_url}/{path}" for store, path in where.items()}, base_url, {}
    elif backend == "s3":
        with s3_serving(root, log_path, network, stores=stores) as (prefix, options):
            urls = {store: f"{prefix}/{path}" for store, path in where.items()}
            yield urls, options["endpoint_url"], options
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
