"""Scale run: the whole workflow on a synthetic atlas of N cells x 20,000 genes.

    python benchmarks/scale_run.py [--cells 2000000] [--genes 20000] [--chunk 10000]
                                   [--data benchmarks/data] [--work DIR] [--json FILE]

Makes (once, cached in --data as ``synthetic-census-CELLS-GENES.zarr``) an AnnData zarr store of
cells drawn from a pool of 20,000 simulated ones (``benchmarks/synth.py``, written in blocks, so
memory stays flat), writes a config that reads it as one tissue (``synthetic``: the whole store)
in one geometry (--chunk cells per chunk, unsharded, codec ``packed``), and runs fetch ->
rechunk -> consolidate -> analyze (fused engine, seurat, 2,000 HVGs, 50 PCs) -> plot_pca ->
summary with ``snakemake --cores 2`` in --work (default: DATA/scale-run-CELLS, removed and made
again each run).  Remote accounting is off: it would read the whole store again several times.

What is measured:

* the whole run: wall time, CPU, and peak RSS and PSS summed over snakemake's process tree and
  the run's shared Dask cluster (``measure`` of ``hvg_pca.py``: RSS every 50 ms, PSS every
  0.5 s);
* fetch, rechunk, consolidate, analyze: wall time and ``max_rss`` of each job from Snakemake's
  benchmark files.  The analysis runs on the run's shared Dask cluster (a service process of
  its own, ``chunkatlas.analysis._shared_cluster``), so its memory is the job's (the driver)
  plus the
  workers' peak during the analysis (``uns['chunkatlas']['workers_peak_rss_mb']``), as
  ``summary.tsv``'s ``analyze_max_rss_mb`` adds them;
* the seconds of each analysis pass, the stores' sizes on disk (the synthetic source, fetched,
  rechunked) and the machine.

Never run by the tests.  At 2,000,000 cells the stores need about 3.7 GB (source), 3.5 GB
(fetched) and 2.1 GB (rechunked) of disk (scaled from 30,000 cells).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from hvg_pca import machine, measure  # noqa: E402

POOL_CELLS = 20_000  # as hvg_pca.py's FULL plan
TISSUE = "synthetic"
RUN = "scale"
STEPS = ("fetch", "rechunk", "consolidate", "analyze")  # the rules with a benchmark file


def make_store(store: Path, cells: int, genes: int) -> None:
    """The synthetic source store (made once, then reused)."""
    if not store.exists():
        from synth import make_pool, write_store

        start = time.perf_counter()
        pool = make_pool(POOL_CELLS, genes)
        print(f"pool of {POOL_CELLS:,} cells: {time.perf_counter() - start:.0f} s", flush=True)
        partial = store.with_name(store.name + ".partial")  # an interrupted write is not cached
        write_store(partial, pool, cells, chunk=10_000)
        partial.rename(store)
        print(f"store {store.name}: {time.perf_counter() - start:.0f} s", flush=True)


def write_config(work: Path, store: Path, chunk: int) -> Path:
    """The run's config, validated as the workflow will validate it."""
    import yaml

    from chunkatlas.config import load_schema, validate_config
    from chunkatlas.errors import ChunkatlasError

    config = {
        "run": RUN,
        "source": {"kind": "anndata", "uri": str(store.resolve()), "tissue_column": None},
        "tissues": [TISSUE],
        "chunks": [chunk],
        "shards": [1],
        "codecs": ["packed"],
        "analysis": {
            "engine": "fused",
            "flavor": "seurat",
            "n_top_genes": 2000,
            "n_comps": 50,
            "label_key": "cell_type",
        },
        "remote": {"enabled": False},
    }
    try:  # an unknown key or a bad value fails here, at once
        validate_config(config, load_schema())
    except ChunkatlasError as err:
        sys.exit(f"config: {err}")
    path = work / "scale_run.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def tree_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def collect(work: Path, chunk: int) -> dict:
    """Per step: seconds and peak memory; the analysis's passes; the stores' sizes."""
    import zarr
    from anndata.io import read_elem

    from chunkatlas.report import PASSES, read_benchmark

    def rank(name: str) -> int:  # the passes in the order they ran
        return PASSES.index(name) if name in PASSES else len(PASSES)

    results = work / "results" / RUN
    point = f"{TISSUE}/cells-{chunk}-shard-1-packed"
    benchmarks = results / "benchmarks"
    steps = {
        step: read_benchmark(benchmarks / step / f"{TISSUE if step == 'fetch' else point}.tsv")
        for step in STEPS
    }
    uns = read_elem(zarr.open_group(results / point / "hvg_pca.zarr", mode="r")["uns/chunkatlas"])
    workers = float(uns.get("workers_peak_rss_mb") or 0)
    steps["analyze"].update(
        driver_rss_mb=steps["analyze"]["max_rss_mb"],
        workers_peak_rss_mb=workers,
        max_rss_mb=round(steps["analyze"]["max_rss_mb"] + workers, 1),
    )
    return {
        "steps": steps,
        "analysis": {
            "cluster": str(uns.get("cluster")),
            "seconds": {
                name: round(float(seconds), 2)
                for name, seconds in sorted(uns["seconds"].items(), key=lambda i: rank(i[0]))
            },
        },
        "stores_mb": {
            "fetched": tree_mb(results / TISSUE / "fetched.zarr"),
            "rechunked": tree_mb(results / point / "store.zarr"),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, default=2_000_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=10_000, help="cells per chunk of X")
    parser.add_argument("--data", default=str(HERE / "data"), help="where the store is cached")
    parser.add_argument("--work", default=None, help="the run's folder (default DATA/scale-run-N)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument(
        "--store", default=None, help="an existing source store of --cells cells (made if absent)"
    )
    args = parser.parse_args()
    data = Path(args.data).resolve()
    data.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or data / f"scale-run-{args.cells}").resolve()
    if work.exists() and any(work.iterdir()) and not (work / "scale_run.yaml").exists():
        sys.exit(f"{work} is not empty and not an earlier scale run's folder: not removing it")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    import psutil

    report: dict = {
        "machine": {**machine(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1)},
        "cells": args.cells,
        "genes": args.genes,
        "chunk": args.chunk,
    }
    print(f"machine: {report['machine']}", flush=True)
    store = Path(args.store or data / f"synthetic-census-{args.cells}-{args.genes}.zarr").resolve()
    config = write_config(work, store, args.chunk)
    make_store(store, args.cells, args.genes)
    argv = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
    argv += ["--directory", str(work), "--cores", "2", "--configfile", str(config)]
    print(f"running: {' '.join(argv)}", flush=True)
    run = measure("snakemake", argv)
    report["run"] = {
        "returncode": run.returncode,
        "seconds": run.seconds,
        "cpu_seconds": run.cpu_seconds,
        "peak_rss_mb": run.peak_rss_mb,
        "peak_pss_mb": run.peak_pss_mb,
        "peak": run.peak,
    }
    if run.returncode:  # measure printed the end of snakemake's stderr
        sys.exit(f"snakemake failed (exit {run.returncode}); job logs: {work}/results/{RUN}/logs")
    report.update(collect(work, args.chunk))
    report["stores_mb"] = {"source": tree_mb(store), **report["stores_mb"]}

    print(f"\n{args.cells:,} cells x {args.genes:,} genes, {args.chunk:,} cells per chunk\n")
    print("| step | wall s | peak memory MB |\n| --- | ---: | ---: |")
    for step, row in report["steps"].items():
        print(f"| {step} | {row['seconds']:,.1f} | {row['max_rss_mb']:,.0f} |")
    analyze = report["steps"]["analyze"]
    print(
        f"\nanalyze: the job (driver) {analyze['driver_rss_mb']:,.0f} MB + the workers' peak "
        f"{analyze['workers_peak_rss_mb']:,.0f} MB"
    )
    whole = report["run"]
    print(
        f"whole run: {whole['seconds']:,.1f} s (CPU {whole['cpu_seconds']:,.0f} s), peak RSS "
        f"{whole['peak_rss_mb']:,.0f} MB, PSS {whole['peak_pss_mb']:,.0f} MB (every process)"
    )
    at = report["run"]["peak"]
    largest_first = sorted(at["mb"].items(), key=lambda item: -item[1])
    parts = ", ".join(f"{name} {mb:,.0f}" for name, mb in largest_first)
    print(f"at the RSS peak ({at['at_s']} s into the run), MB: {parts}")
    analysis = report["analysis"]
    passes = ", ".join(f"{k} {v:.1f} s" for k, v in analysis["seconds"].items())
    print(f"\nanalysis on cluster {analysis['cluster']!r}: {passes}")
    sizes = ", ".join(f"{name} {mb:,.0f} MB" for name, mb in report["stores_mb"].items())
    print(f"stores on disk: {sizes}")
    m = report["machine"]
    print(f"machine: {m['cpus']} cores ({m['model']}), {m['ram_gb']} GB RAM, Python {m['python']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
