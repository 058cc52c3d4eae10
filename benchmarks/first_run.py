"""The first `chunkatlas analyze` after a fresh install against the second.

    python -m benchmarks.first_run [--cells 72000] [--repeats 3]

A fresh install (a new virtualenv, container or compute node) has no numba kernel cache: its
first analysis compiles the fused engine's kernels, on every worker.  Each repeat runs the
command twice in a row with a numba cache directory of its own (``NUMBA_CACHE_DIR``, empty
before the first): the first pays the compilation, the second finds every kernel cached.  The
store is written as anndata writes by default (what a user brings), from the first ``--cells``
cells of the 500,000-cell benchmark store (``python -m benchmarks.hvg_pca`` makes it).

Prints each pair's seconds and the median ratio first / second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anndata as ad
import zarr
from anndata.io import read_elem, sparse_dataset

DATA = Path(__file__).parent / "data"
SOURCE = DATA / "synthetic-census-500k-20000.zarr"
WORKERS = 2


def anndata_store(cells: int) -> Path:
    """The first ``cells`` cells of the benchmark store, written by anndata with its defaults."""
    store = DATA / f"anndata-default-{cells // 1000}k-20000.zarr"
    if not store.exists():
        group = zarr.open_group(SOURCE, mode="r")
        x = sparse_dataset(group["X"])[:cells]
        obs = read_elem(group["obs"]).iloc[:cells].drop(columns=["raw_sum", "nnz"])
        ad.AnnData(x, obs=obs, var=read_elem(group["var"])).write_zarr(store)
    return store


def analyse(store: Path, out: Path, cache: Path, chunk: int) -> float:
    command = [sys.executable, "-m", "chunkatlas.cli", "analyze", str(store), str(out)]
    command += ["--chunk", str(chunk), "--workers", str(WORKERS)]
    start = time.perf_counter()
    subprocess.run(command, env={**os.environ, "NUMBA_CACHE_DIR": str(cache)}, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, default=72_000)
    parser.add_argument("--chunk", type=int, default=10_000, help="cells per task")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    store = anndata_store(args.cells)
    ratios = []
    with tempfile.TemporaryDirectory(prefix="first-run-") as tmp:
        for repeat in range(args.repeats):
            cache = Path(tmp) / f"numba-{repeat}"
            first = analyse(store, Path(tmp) / f"first-{repeat}.zarr", cache, args.chunk)
            second = analyse(store, Path(tmp) / f"second-{repeat}.zarr", cache, args.chunk)
            ratios.append(first / second)
            print(
                f"repeat {repeat}: first {first:.1f} s, second {second:.1f} s, "
                f"ratio {first / second:.2f}",
                flush=True,
            )
    print(
        f"{args.cells:,} cells, {WORKERS} workers: first / second = "
        f"{statistics.median(ratios):.2f} (median of {args.repeats})"
    )


if __name__ == "__main__":
    main()
