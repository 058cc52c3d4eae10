"""What each chunk size costs when a store is read remotely: requests, bytes and seconds for
access patterns, counted by the server that answers them.  Each pattern is read several
times, each time from a freshly opened store; seconds are the median of those cold reads.

Each pattern reads what a user would: a block of cells at a random offset, genes drawn at
random, the same for every store of one tissue shape (:func:`~._reads.pattern_selection`).
Beside its traffic each read records the ranges of X's arrays it asked for and the stored
values they hold (:func:`~._reads.covered`), so that a model of the layout can predict that
traffic exactly.

The store is served over HTTP (aiohttp or nginx) or S3 (moto), on loopback, optionally over an
emulated :class:`~chunkatlas.study._network.Network`: on bare loopback a request costs nothing,
so seconds there say little about many small chunks against an object store.

Reads are planned per array, as a reader of the layout would make them
(:func:`~._reads.read_pattern`): each stored object a pattern needs is fetched once, so the
study measures the layout and not the reader.  zarr fetches an array's chunks under its
``async.concurrency``; how many requests were in flight at once is in the server's log
(:func:`peak_in_flight`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import dask
import numpy as np
import pandas as pd

from chunkatlas._schema import default
from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import (
    Bucket,
    RemoteSettings,
    matrix_shape,
    open_remote_group,
)
from chunkatlas.study._network import LOOPBACK, Network
from chunkatlas.study._reads import PATTERNS, Selection, covered, pattern_selection, read_pattern
from chunkatlas.study._request_log import ReaderCount, RequestLog
from chunkatlas.study._serving import served_stores

REPEATS = default("remote.repeats")  # cold reads per pattern: a median of three
#: Read once, uncounted, before the measured reads: what open reads (metadata, obs and var),
#: no part of X, so it costs the same small read on every layout however large X is.
WARM_UP = "open"


@dataclass
class Measurement:
    """One pattern's cost: traffic is the same on every cold read, seconds vary."""

    pattern: str
    cells: int  # the part of X read: cells x genes (0 x 0 for open)
    genes: int
    values: int  # stored values the read covers (all of X's where it reads whole arrays)
    ranges: str  # JSON: the ranges of indptr and of data/indices it asks for; "" for whole arrays
    requests: int
    bytes: int
    repeats: int
    seconds: float  # median over the repeats
    seconds_min: float
    seconds_max: float


def run_patterns(
    url: str,
    log: RequestLog | ReaderCount,
    settings: RemoteSettings | None = None,
    repeats: int = REPEATS,
    patterns: Sequence[str] = PATTERNS,
    warm_up: bool = True,
) -> list[Measurement]:
    """Read each pattern of the store at ``url`` ``repeats`` times, each from a freshly opened
    store, counting server requests; seconds are the median of the repeats.  Every repeat
    reads the pattern's selection for X's shape (:func:`~._reads.pattern_selection`).

    Each read starts cold: a new zarr group and Dask graph, nothing kept from earlier reads
    (fsspec may reuse its HTTP connections).  Before the measured reads, uncounted, the store
    is opened once (metadata, obs and var) and the entries of X's ``indptr`` the patterns'
    ranges start and end at are read (:func:`~._reads.covered`: each measurement's ``ranges``
    and ``values``).  Then one uncounted read made as the measured ones are, what ``open``
    reads (:data:`WARM_UP`), so that no pattern's seconds pay the process's warm-up (imports,
    first connection, thread pool) or depend on which was measured first; ``warm_up=False``
    skips it where the process has read another store from the same server already.
    Requests and bytes must not differ between repeats.

    The server emulates its network only while a pattern is measured: what comes before the
    measured reads and the open before each read are answered at loopback speed (their
    seconds are not measured, their requests are the same); that open reads the store's
    metadata, not obs and var.
    """
    if repeats < 1:
        raise ChunkatlasError(f"repeats must be at least 1, got {repeats}")

    def open_store(with_annotations: bool = True):
        """What a reader does first: the store's metadata (consolidated), obs and var.  Before
        a pattern of X, uncounted: the metadata alone (a fresh store; obs and var are other
        objects, so reading them changes nothing of X's reads but the job's seconds)."""
        from anndata.io import read_elem

        group, _ = open_remote_group(url, settings)
        for axis in ("obs", "var") if with_annotations else ():
            read_elem(group[axis])
        return group

    def read_once(
        pattern: str, selections: dict[str, Selection], paced: bool = True
    ) -> tuple[tuple[int, ...], float]:
        group = None if pattern == "open" else open_store(with_annotations=False)
        log.mark(pace=paced)  # the open above is not this pattern's traffic
        start = time.perf_counter()
        if group is None:
            open_store()
            shape = (0, 0)
        else:
            shape = read_pattern(pattern, group["X"], selections[pattern])
        seconds = time.perf_counter() - start
        return (*shape, *log.traffic(pace=False)), seconds

    traffic: dict[str, tuple[int, ...]] = {}
    seconds: dict[str, list[float]] = {p: [] for p in patterns}
    with dask.config.set(scheduler="threads"):
        # Not counted: the process's first read pays imports and thread start-up, whatever
        # the pattern, and would stretch that pattern's spread.  Unpaced, as every open
        # before a measured read: the emulated sleeps would only lengthen the job.
        log.mark(pace=False)
        x = open_store()["X"]  # the first obs and var too: the measured `open` is not the first
        selections = {p: pattern_selection(p, *matrix_shape(x)) for p in patterns}
        reads = covered(x, selections)  # the first read of X too: entries of its indptr
        if warm_up:
            read_once(WARM_UP, selections, paced=False)
        for _ in range(repeats):
            for pattern in patterns:
                cost, took = read_once(pattern, selections)
                first = traffic.setdefault(pattern, cost)
                if cost != first:
                    raise ChunkatlasError(
                        f"remote pattern {pattern!r} cost (cells, genes, requests, bytes) {first} "
                        f"on one cold read and {cost} on another: with retries or a changing "
                        "store the counts would mean nothing"
                    )
                seconds[pattern].append(took)
    measured = []
    for pattern in patterns:
        cells, genes, requests, moved = traffic[pattern]
        ranges, values = reads[pattern]
        measured.append(
            Measurement(
                pattern,
                cells,
                genes,
                values,
                ranges,
                requests,
                moved,
                repeats,
                round(float(np.median(seconds[pattern])), 4),
                round(min(seconds[pattern]), 4),
                round(max(seconds[pattern]), 4),
            )
        )
    return measured


CONDITIONS = ("backend", "server", "latency_ms", "bandwidth_mbps")  # how a row was measured


def measure_store(
    store: str | os.PathLike,
    *,
    backend: str = "http",
    server: str = "aiohttp",
    network: Network = LOOPBACK,
    workdir: str | os.PathLike | None = None,
    settings: RemoteSettings | None = None,
    repeats: int = REPEATS,
    patterns: Sequence[str] = PATTERNS,
) -> pd.DataFrame:
    """Serve ``store`` (and its manifest) on loopback over HTTP (``server``: aiohttp or nginx)
    or S3 (moto; ``server`` is then "moto"), behind ``network``, and measure every pattern,
    ``repeats`` cold reads each (:func:`run_patterns`).  Every row names the backend, server
    and network it was measured with (:data:`CONDITIONS`).

    Over S3 the reader's storage options are ``settings``' with the server's endpoint and
    credentials over them (the reader's: one GET per whole object, as over HTTP).
    """
    [table] = measure_stores(
        [store],
        backend=backend,
        server=server,
        network=network,
        workdir=workdir,
        settings=settings,
        repeats=repeats,
        patterns=patterns,
    )
    return table


def measure_stores(
    stores: Sequence[str | os.PathLike],
    *,
    backend: str = "http",
    server: str = "aiohttp",
    network: Network = LOOPBACK,
    workdir: str | os.PathLike | None = None,
    settings: RemoteSettings | None = None,
    repeats: int = REPEATS,
    patterns: Sequence[str] = PATTERNS,
) -> list[pd.DataFrame]:
    """:func:`measure_store` of each store, one after the other, all served by one server
    started once: the process's warm-up read is paid on the first store only (each store is
    still opened once, uncounted, before its measured reads)."""
    stores = [Path(store) for store in stores]
    settings = settings or RemoteSettings()
    tables = []
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".requests-") as tmp:
        log_path = Path(tmp) / "requests.jsonl"
        log_path.touch()
        with served_stores(backend, stores, log_path, server, network) as (
            urls,
            base_url,
            options,
        ):
            if options:  # the server's credentials and endpoint over the config's options
                settings = replace(
                    settings, storage_options={**settings.storage_options, **options}
                )
            log = RequestLog(log_path, base_url)
            for at, store in enumerate(stores):
                rows_out = run_patterns(urls[store], log, settings, repeats, patterns, at == 0)
                tables.append(
                    measurement_table(
                        rows_out, backend, "moto" if backend == "s3" else server, network
                    )
                )
    return tables


def measure_in_bucket(
    url: str,
    bucket: Bucket,
    *,
    settings: RemoteSettings | None = None,
    repeats: int = REPEATS,
    patterns: Sequence[str] = PATTERNS,
) -> pd.DataFrame:
    """Measure every pattern on the store at ``url`` in the run's own bucket, where the
    workflow keeps its outputs: requests and bytes as the reader counts them, seconds over the
    bucket's own network (nothing emulated; server "bucket")."""
    rows_out = run_patterns(url, ReaderCount(), bucket.reader(settings), repeats, patterns)
    return measurement_table(rows_out, "s3", "bucket", LOOPBACK)


def measurement_table(
    rows: list[Measurement], backend: str, server: str, network: Network
) -> pd.DataFrame:
    """The measurements, each row naming how it was measured (:data:`CONDITIONS`)."""
    # bandwidth_mbps None (an empty cell in a TSV): no cap
    values = (backend, server, float(network.latency_ms), network.bandwidth_mbps)
    table = pd.DataFrame([vars(m) for m in rows])
    for at, (name, value) in enumerate(zip(CONDITIONS, values, strict=True), start=1):
        table.insert(at, name, value)
    return table


def measure_backends(
    store: str | os.PathLike,
    *,
    backends: Sequence[str] = default("remote.backends"),
    server: str = default("remote.server"),
    network: Network = LOOPBACK,
    settings: RemoteSettings | None = None,
    repeats: int = REPEATS,
    patterns: Sequence[str] = PATTERNS,
    in_bucket: tuple[str, Bucket] | None = None,
) -> pd.DataFrame:
    """:func:`measure_store` over each backend, with what the store's geometry costs beside
    the traffic: its objects (files), bytes, X's stored bytes (what reading all of X must
    move), and seconds to decode X once locally.

    ``in_bucket`` (URL, bucket): the same store where the workflow keeps it; backend s3 is
    then measured there (:func:`measure_in_bucket`) rather than on a loopback server.
    """
    [table] = measure_stores_backends(
        [store],
        backends=backends,
        server=server,
        network=network,
        settings=settings,
        repeats=repeats,
        patterns=patterns,
        in_bucket=[in_bucket],
    )
    return table


def measure_stores_backends(
    stores: Sequence[str | os.PathLike],
    *,
    backends: Sequence[str] = default("remote.backends"),
    server: str = default("remote.server"),
    network: Network = LOOPBACK,
    settings: RemoteSettings | None = None,
    repeats: int = REPEATS,
    patterns: Sequence[str] = PATTERNS,
    in_bucket: Sequence[tuple[str, Bucket] | None] | None = None,
    processes: int = 1,
) -> list[pd.DataFrame]:
    """:func:`measure_backends` of several stores, each backend's server started once for all
    of them (:func:`measure_stores`); one table per store, in order.  ``in_bucket``: per
    store, as for :func:`measure_backends` (all or none).

    ``processes`` > 1: the loopback backends are measured side by side, each by a reader
    process of its own (as separate jobs would be, one core each), so a job of two backends
    takes the time of one."""
    from concurrent.futures import Future, ProcessPoolExecutor
    from multiprocessing import get_context

    from chunkatlas.rewrite import decode_pass_seconds
    from chunkatlas.store import load_manifest, manifest_location

    stores = [Path(store) for store in stores]
    in_bucket = list(in_bucket or [None] * len(stores))
    in_place = all(where is not None for where in in_bucket)
    served_here = [b for b in backends if not (b == "s3" and in_place)]
    workers = min(processes, len(served_here))
    measured: dict[str, Future | list[pd.DataFrame]] = {}
    with (
        ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
        if workers > 1
        else (nullcontext()) as pool
    ):
        for backend in backends:
            if backend not in served_here:
                measured[backend] = [
                    measure_in_bucket(
                        url, bucket, settings=settings, repeats=repeats, patterns=patterns
                    )
                    for url, bucket in in_bucket
                ]
                continue
            measure = partial(
                measure_stores,
                stores,
                backend=backend,
                server=server,
                network=network,
                settings=settings,
                repeats=repeats,
                patterns=patterns,
            )
            measured[backend] = pool.submit(measure) if pool else measure()
        by_backend = [
            got.result() if isinstance(got, Future) else got
            for got in (measured[backend] for backend in backends)
        ]
    tables = []
    for at, store in enumerate(stores):
        table = pd.concat([tables_of[at] for tables_of in by_backend], ignore_index=True)
        manifest = load_manifest(manifest_location(store))
        table["objects"] = manifest["objects"]
        table["store_bytes"] = manifest["stored_bytes"]
        x_arrays = [a for a in manifest["arrays"] if a["path"].split("/")[0] == "X"]
        table["x_bytes"] = sum(a["stored_bytes"] for a in x_arrays)
        table["indptr_bytes"] = sum(a["stored_bytes"] for a in x_arrays if a["path"] == "X/indptr")
        table["decode_seconds"] = round(decode_pass_seconds(store), 3)
        tables.append(table)
    return tables
