"""What each chunk size costs when a store is read remotely: requests, bytes and seconds for
fixed access patterns, counted by the server that answers them.  Each pattern is read several
times, each time from a freshly opened store; seconds are the median of those cold reads."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import pandas as pd

from chunkatlas.errors import ChunkatlasError
from chunkatlas.remote.reader import RemoteSettings, open_remote_group
from chunkatlas.remote.serve import MARK_PREFIX, serving
from chunkatlas.store.lazy import read_lazy

PATTERNS = ("open", "one_gene", "fifty_genes", "cell_block", "all_x")
CELL_BLOCK = 1000  # the most cells cell_block reads
PANEL = 50
REPEATS = 3  # cold reads per pattern: the median needs three, the run stays short
WARM_UP = "one_gene"  # read once, uncounted, before the measured reads: the cheapest pattern


def cell_block_size(n_obs: int) -> int:
    """Cells the cell_block pattern reads: a tenth of the tissue, at least 1 and at most
    CELL_BLOCK, so that it stays a block and never becomes all of X in a small tissue."""
    return max(1, min(CELL_BLOCK, n_obs // 10))


def pattern_genes(n_vars: int) -> dict[str, np.ndarray]:
    """The genes each pattern reads: one gene in the middle; 50 spread evenly (a panel)."""
    return {
        "one_gene": np.array([n_vars // 2]),
        "fifty_genes": np.unique(np.linspace(0, n_vars - 1, min(PANEL, n_vars)).astype(int)),
    }


class RequestLog:
    """The server's JSON-lines request log, read between marker requests."""

    def __init__(self, path: str | os.PathLike, base_url: str) -> None:
        self.path = Path(path)
        self.base_url = base_url
        self.count = 0

    def mark(self, timeout: float = 10.0) -> list[dict]:
        """Entries logged since the previous mark (the marker requests themselves excluded)."""
        self.count += 1
        name = f"{MARK_PREFIX}{self.count}"
        with urllib.request.urlopen(self.base_url + name, timeout=timeout):
            pass
        deadline = time.monotonic() + timeout
        while True:
            entries = [json.loads(line) for line in self.path.read_text().splitlines() if line]
            at = [i for i, e in enumerate(entries) if e["path"] == name]
            if at or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        before = f"{MARK_PREFIX}{self.count - 1}"
        previous = [i for i, e in enumerate(entries) if e["path"] == before]
        start = previous[0] + 1 if previous else 0
        return [e for e in entries[start : at[0]] if not e["path"].startswith(MARK_PREFIX)]


def total(x) -> float:
    """Sum of every value of a Dask array of dense or sparse blocks: reads all of it once."""
    sums = [dask.delayed(lambda block: float(block.sum()))(b) for b in x.to_delayed().ravel()]
    return float(np.sum(dask.compute(*sums)))


@dataclass
class Measurement:
    """One pattern's cost: traffic is the same on every cold read, seconds vary."""

    pattern: str
    cells: int  # the part of X read: cells x genes (0 x 0 for open)
    genes: int
    requests: int
    bytes: int
    repeats: int
    seconds: float  # median over the repeats
    seconds_min: float
    seconds_max: float


def read_pattern(pattern: str, x) -> tuple[int, int]:
    """Read one access pattern from X (a Dask array); return the cells and genes it read."""
    n_obs, n_vars = x.shape
    if pattern == "all_x":
        total(x)
        return n_obs, n_vars
    if pattern == "cell_block":
        cells = cell_block_size(n_obs)
        x[:cells].compute()
        return cells, n_vars
    genes = pattern_genes(n_vars)[pattern]
    x[:, genes].compute()
    return n_obs, len(genes)


def run_patterns(
    url: str,
    log: RequestLog,
    rows: int,
    settings: RemoteSettings | None = None,
    repeats: int = REPEATS,
) -> list[Measurement]:
    """Read each pattern of the store at ``url`` ``repeats`` times, each from a freshly opened
    store, counting server requests; seconds are the median of the repeats.

    Each read starts cold: a new zarr group and Dask graph, nothing kept from earlier reads
    (fsspec may reuse its HTTP connections).  One uncounted read first pays the process's
    warm-up (imports, first connection, thread pool), so that no pattern's seconds depend on
    which was measured first.  Requests and bytes must not differ between repeats.
    """
    if repeats < 1:
        raise ChunkatlasError(f"repeats must be at least 1, got {repeats}")

    def open_store():
        group, _ = open_remote_group(url, settings)
        return read_lazy(group, rows, dense_chunks="disk")

    def read_once(pattern: str) -> tuple[tuple[int, ...], float]:
        adata = None if pattern == "open" else open_store()
        log.mark()  # the open above is not this pattern's traffic
        start = time.perf_counter()
        if adata is None:
            open_store()
            shape = (0, 0)
        else:
            shape = read_pattern(pattern, adata.X)
        seconds = time.perf_counter() - start
        entries = log.mark()
        return (*shape, len(entries), sum(e["bytes"] for e in entries)), seconds

    traffic: dict[str, tuple[int, ...]] = {}
    seconds: dict[str, list[float]] = {p: [] for p in PATTERNS}
    with dask.config.set(scheduler="threads"):
        # Not counted: the process's first read pays imports and thread start-up, whatever
        # the pattern, and would stretch that pattern's spread.
        read_once(WARM_UP)
        for _ in range(repeats):
            for pattern in PATTERNS:
                cost, took = read_once(pattern)
                first = traffic.setdefault(pattern, cost)
                if cost != first:
                    raise ChunkatlasError(
                        f"remote pattern {pattern!r} cost (cells, genes, requests, bytes) {first} "
                        f"on one cold read and {cost} on another: with retries or a changing "
                        "store the counts would mean nothing"
                    )
                seconds[pattern].append(took)
    return [
        Measurement(
            pattern,
            *traffic[pattern],
            repeats,
            round(float(np.median(seconds[pattern])), 4),
            round(min(seconds[pattern]), 4),
            round(max(seconds[pattern]), 4),
        )
        for pattern in PATTERNS
    ]


def measure_store(
    store: str | os.PathLike,
    rows: int,
    *,
    server: str = "aiohttp",
    workdir: str | os.PathLike | None = None,
    settings: RemoteSettings | None = None,
    repeats: int = REPEATS,
) -> pd.DataFrame:
    """Serve ``store`` (and its manifest) over HTTP on loopback and measure every pattern,
    ``repeats`` cold reads each (:func:`run_patterns`)."""
    import tempfile

    store = Path(store)
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".requests-") as tmp:
        log_path = Path(tmp) / "requests.jsonl"
        log_path.touch()
        with serving(server, store.parent, log_path) as base_url:
            log = RequestLog(log_path, base_url)
            rows_out = run_patterns(f"{base_url}/{store.name}", log, rows, settings, repeats)
    table = pd.DataFrame([vars(m) for m in rows_out])
    table.insert(1, "server", server)
    return table
