"""What each chunk size costs when a store is read remotely: requests, bytes and seconds for
fixed access patterns, counted by the server that answers them."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import pandas as pd

from chunkatlas.remote.reader import RemoteSettings, open_remote_group
from chunkatlas.remote.serve import MARK_PREFIX, serving
from chunkatlas.store.lazy import read_lazy

PATTERNS = ("open", "one_gene", "fifty_genes", "cell_block", "all_x")
CELL_BLOCK = 1000
PANEL = 50


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
    pattern: str
    requests: int
    bytes: int
    seconds: float


def run_patterns(
    url: str, log: RequestLog, rows: int, settings: RemoteSettings | None = None
) -> list[Measurement]:
    """Open the store at ``url`` lazily and read each pattern once, counting server requests."""
    results = []
    log.mark()

    def measure(name: str, action: Callable[[], object]) -> object:
        start = time.perf_counter()
        value = action()
        seconds = time.perf_counter() - start
        entries = log.mark()
        results.append(
            Measurement(name, len(entries), sum(e["bytes"] for e in entries), round(seconds, 4))
        )
        return value

    def open_store():
        group, _ = open_remote_group(url, settings)
        return read_lazy(group, rows, dense_chunks="disk")

    with dask.config.set(scheduler="threads"):
        adata = measure("open", open_store)
        x = adata.X
        genes = pattern_genes(adata.n_vars)
        measure("one_gene", lambda: x[:, genes["one_gene"]].compute())
        measure("fifty_genes", lambda: x[:, genes["fifty_genes"]].compute())
        measure("cell_block", lambda: x[: min(CELL_BLOCK, adata.n_obs)].compute())
        measure("all_x", lambda: total(x))
    return results


def measure_store(
    store: str | os.PathLike,
    rows: int,
    *,
    server: str = "aiohttp",
    workdir: str | os.PathLike | None = None,
    settings: RemoteSettings | None = None,
) -> pd.DataFrame:
    """Serve ``store`` (and its manifest) over HTTP on loopback and measure every pattern."""
    import tempfile

    store = Path(store)
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".requests-") as tmp:
        log_path = Path(tmp) / "requests.jsonl"
        log_path.touch()
        with serving(server, store.parent, log_path) as base_url:
            log = RequestLog(log_path, base_url)
            rows_out = run_patterns(f"{base_url}/{store.name}", log, rows, settings)
    table = pd.DataFrame([vars(m) for m in rows_out])
    table.insert(1, "server", server)
    return table
