"""What each pass of an analysis costs when the store is read locally, over HTTP and over S3.

    python -m benchmarks.remote_analysis [--cells 30000] [--chunk 500] [--engine fused]
    python -m benchmarks.remote_analysis --chunk 10000 \
        --store benchmarks/data/synthetic-census-500k-20000-packed.zarr

Builds the demo atlas of config/config.yaml (30,000 cells x 2,000 genes, tissue lung), stores
it at the default geometry (``--chunk`` cells per chunk, unsharded, the default codec), and
analyses it with 2 workers three ways: from its path, from a loopback aiohttp server and from a
loopback S3 server (moto), both behind the emulated object-store network (30 ms to the first byte,
160 Mbit/s per response).  Per pass: requests, MB, seconds, and for the remote reads the ratio

    seconds / (requests x latency / workers)

which would be about 1 if each worker waited for its requests one after another; well below 1
means the round trips overlap (each task's arrays in flight together, two tasks per worker).
Also in the table: the demo atlas's requests and bytes per pass for the README.  ``--store``
analyses a copy of an existing store instead (e.g. the 500,000-cell benchmark store that
``python -m benchmarks.hvg_pca`` writes); the last lines give each read's wall seconds and
their ratio to the local read.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store
from chunkatlas.ingest import fetch_tissue
from chunkatlas.ingest.demo import DemoSpec, write_demo_atlas
from chunkatlas.report import ordered_passes
from chunkatlas.rewrite import consolidate_store, rechunk_store
from chunkatlas.store import RemoteSettings
from chunkatlas.study import OBJECT_STORE, served_store

WORKERS = 2


def demo_store(where: Path, cells: int, chunk: int) -> Path:
    write_demo_atlas(str(where / "atlas.soma"), DemoSpec(n_cells=cells, n_genes=2000, seed=0))
    fetch_tissue(str(where / "atlas.soma"), "lung", where / "lung.zarr", chunk_rows=10_000)
    store = where / "served" / "store.zarr"
    rechunk_store(where / "lung.zarr", store, chunk)
    consolidate_store(store, store.with_name("store.manifest.json"))
    return store


def copied_store(where: Path, source: Path) -> Path:
    """A consolidated copy of ``source`` with its manifest, as the workflow serves a store."""
    store = where / "served" / "store.zarr"
    shutil.copytree(source, store)
    consolidate_store(store, store.with_name("store.manifest.json"))
    return store


def analysed(store, out: Path, params: AnalysisParams, chunk: int, threads: int, remote=None):
    cluster = ClusterSettings(workers=WORKERS, memory_mb=4096, threads_per_worker=threads)
    start = time.perf_counter()
    result = analyze_store(
        store, out, task_cells=chunk, params=params, cluster=cluster, remote=remote
    )
    return {**result.uns["chunkatlas"], "wall_seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, default=30_000)
    parser.add_argument("--store", type=Path, help="analyse a copy of this store instead")
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--engine", default="fused", choices=["fused", "scanpy"])
    parser.add_argument(
        "--threads-per-worker", type=int, default=1, help="remote reads use at least 2"
    )
    args = parser.parse_args()
    params = AnalysisParams(engine=args.engine, n_top_genes=1000)
    latency = OBJECT_STORE.latency_ms / 1000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            store = copied_store(Path(tmp), args.store)
        else:
            store = demo_store(Path(tmp), args.cells, args.chunk)
        records = {
            "local": analysed(
                store, Path(tmp) / "local.zarr", params, args.chunk, args.threads_per_worker
            )
        }
        for backend in ("http", "s3"):
            server = "aiohttp" if backend == "http" else "moto"
            with served_store(backend, store, server, OBJECT_STORE) as (url, options):
                remote = RemoteSettings(storage_options=options)
                out = Path(tmp) / f"{backend}.zarr"
                records[backend] = analysed(
                    url, out, params, args.chunk, args.threads_per_worker, remote
                )
    for read, record in records.items():
        for step, cost in ordered_passes(record):
            if not cost["requests"]:
                continue
            bound = cost["requests"] * latency / WORKERS
            rows.append(
                {
                    "read": read,
                    "pass": step,
                    "requests": cost["requests"],
                    "MB": round(cost["bytes"] / 1e6, 2),
                    "seconds": cost["seconds"],
                    "retries": cost["retries"],
                    "s / (requests x latency / workers)": (
                        round(cost["seconds"] / bound, 2)
                        if read != "local" and step != "open"  # an open waits by nature
                        else None
                    ),
                }
            )
        driver = record["driver_reads"]
        rows.append(
            {
                "read": read,
                "pass": "driver (metadata, indptr, obs, var)",
                "requests": driver["requests"],
                "MB": round(driver["bytes"] / 1e6, 2),
            }
        )
    what = args.store.name if args.store else f"{args.cells:,}-cell demo atlas, tissue lung"
    print(
        f"{what}, {args.chunk} cells per task, engine {args.engine}, {WORKERS} workers; "
        f"network {OBJECT_STORE}"
    )
    print(pd.DataFrame(rows).to_markdown(index=False))
    local = records["local"]["wall_seconds"]
    for read, record in records.items():
        wall = record["wall_seconds"]
        print(f"{read}: {wall:.1f} s, {wall / local:.2f}x the local read")


if __name__ == "__main__":
    main()
