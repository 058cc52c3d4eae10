"""Benchmark batch-aware HVGs: the fused engine against stock scanpy on Dask, with batch_key.

    python -m benchmarks.batch_hvg [--quick] [--cells N] [--batches 100,500] [--repeats N]
                                   [--stock-repeats N] [--timeout S] [--data DIR] [--json FILE]

Run from the repository root.  The store is ``benchmarks/hvg_pca.py``'s 500k store
(``benchmarks/synth.py``: 500,000 cells x 20,000 genes drawn from a pool of 20,000 simulated
cells, ~4.9 % non-zero), rechunked as the workflow writes stores (10,000 cells per chunk, the
default codec preset), made once and cached in --data (shared with hvg_pca.py).  To its obs this
script adds one column per batch count B, ``batch_B``: categorical dataset ids, cells grouped
contiguously by dataset (as the CELLxGENE Census orders them), batch sizes unequal (200 cells
each plus a Dirichlet(0.5) share of the rest), the datasets in a random order along the cells.
X is the same for every batch column (no per-batch effect: speed is what is measured).

For each B, side by side and alternating, each run in its own subprocess (hvg_pca.py's
``measure``: wall time, CPU of the process tree, peak RSS and PSS summed over the driver and its
Dask workers): the fused engine with ``batch_key=batch_B``, stock scanpy 1.12.4 on Dask
(``engine="scanpy"``) with the same batch_key, and once per repeat the fused engine without
batch_key.  Flavor seurat, 2,000 HVGs (500 with --quick), 50 PCs, 2 single-threaded workers,
one task per stored chunk.  One uncounted warm-up first: ``chunkatlas.analysis.warmup`` (tiny
stores: the plain kernels) and a fused batched analysis of the store (the batched kernels).
Each run's ``uns['chunkatlas']['seconds']`` is read back from its result store with anndata.
Repeats (--repeats, --stock-repeats): each fused setting 3 times, stock scanpy once (2 and 1
with --quick).
Every run is wrapped in ``timeout`` (--timeout, default 25 minutes; ``timeout`` is one more tiny
process in the measured tree): a run that hits it is reported as timed out.

Prints the table (seconds, CPU, peak memory, stock / fused-batched and fused-batched /
fused-plain against their targets, >= 3x and <= 1.25x) and each step's seconds; writes JSON to
benchmarks/results/batch_hvg.json (batch_hvg-quick.json with --quick).  ``--quick``: 40,000 cells
x 5,000 genes (hvg_pca.py's quick 40k store), 20 and 100 batches, a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from itertools import chain
from pathlib import Path

from benchmarks.hvg_pca import (
    Plan,
    Run,
    Scale,
    StepLog,
    machine,
    make_stores,
    measure,
    print_run,
    summarise,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FLAVOR = "seurat"
N_COMPS = 50
WORKERS = 2
MEMORY_MB = 8192  # as hvg_pca.py's runs
MIN_BATCH_CELLS = 200  # every batch at least this many cells
DIRICHLET_ALPHA = 0.5  # how unequal the batches' shares of the other cells are
COLUMN_SEED = 7
STOCK_TARGET = 3.0  # stock / fused-batched at least this
OVERHEAD_TARGET = 1.25  # fused-batched / fused-plain at most this
TIMED_OUT = 124  # timeout(1)'s exit status when it stopped the command


@dataclass(frozen=True)
class Setup:
    """What one invocation measures."""

    cells: int
    genes: int
    rows: int  # cells per chunk of the store and per task
    n_top_genes: int
    pool_cells: int
    batches: tuple[int, ...]
    repeats: int  # runs of each fused configuration
    stock_repeats: int  # runs of stock scanpy per batch count
    timeout: int  # seconds before a run is stopped


# The fused runs take seconds, stock scanpy's minutes: three of each fused run (the overhead's
# target is within the machine's drift), one of stock scanpy's.
FULL = Setup(500_000, 20_000, 10_000, 2000, 20_000, (100, 500), 3, 1, 1500)
QUICK = Setup(40_000, 5_000, 2_500, 500, 4_000, (20, 100), 2, 1, 300)


def scale_name(cells: int) -> str:
    """hvg_pca.py's name for a store of ``cells`` cells (so its cached stores are reused)."""
    return f"{cells // 1000}k" if cells % 1000 == 0 else str(cells)


def column_name(n_batches: int) -> str:
    return f"batch_{n_batches}"


# ----------------------------------------------------------------------------- data


def make_store(setup: Setup, data: Path) -> Path:
    """hvg_pca.py's synthetic store of ``setup``'s size, rechunked (made once, then cached)."""
    name = scale_name(setup.cells)
    scale = Scale(name, setup.cells, setup.genes, setup.rows, setup.n_top_genes, ("fused",))
    plan = Plan(
        pool_cells=setup.pool_cells,
        scales=(scale,),
        atlas_cells=0,
        atlas_genes=0,
        e2e_rows=setup.rows,
        e2e_top_genes=setup.n_top_genes,
        repeats=setup.repeats,
        slow_repeats=setup.stock_repeats,
    )
    return make_stores(plan, data)[scale.name]


def batch_sizes(n_cells: int, n_batches: int, rng) -> list[int]:
    """Unequal batch sizes summing to ``n_cells``: MIN_BATCH_CELLS each, plus a
    Dirichlet-drawn share of the rest."""
    import numpy as np

    spare = n_cells - n_batches * MIN_BATCH_CELLS
    if spare < 0:
        raise SystemExit(
            f"{n_batches} batches of at least {MIN_BATCH_CELLS} cells need "
            f"{n_batches * MIN_BATCH_CELLS:,} cells; the store has {n_cells:,}"
        )
    shares = rng.dirichlet(np.full(n_batches, DIRICHLET_ALPHA))
    return (MIN_BATCH_CELLS + rng.multinomial(spare, shares)).tolist()


def batch_column(n_cells: int, n_batches: int):
    """Categorical dataset ids for ``n_cells`` cells: ``n_batches`` datasets of unequal size,
    each one's cells contiguous, the datasets in a random order along the cells."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([COLUMN_SEED, n_batches])
    sizes = np.asarray(batch_sizes(n_cells, n_batches, rng))
    names = [f"dataset-{i:04d}" for i in range(n_batches)]
    order = rng.permutation(n_batches)  # the dataset each run of cells belongs to
    codes = np.repeat(order, sizes[order]).astype(np.int32)
    return pd.Categorical.from_codes(codes, categories=names)


def add_batch_columns(store: Path, counts: tuple[int, ...]) -> dict[str, dict]:
    """Write obs column ``batch_B`` for each B of ``counts`` into ``store`` (anndata's
    ``write_elem`` into the obs group, then obs's "column-order"), unless it holds that column
    already; return each column's batch sizes (fewest, median, most cells)."""
    import numpy as np
    import zarr
    from anndata.io import read_elem, write_elem

    obs = zarr.open_group(store, mode="r+")["obs"]
    order = list(obs.attrs.get("column-order", []))
    n_cells = obs[obs.attrs["_index"]].shape[0]
    sizes = {}
    for n_batches in counts:
        name = column_name(n_batches)
        column = batch_column(n_cells, n_batches)
        if name in order:
            stored = read_elem(obs[name])
            same = list(stored.categories) == list(column.categories) and np.array_equal(
                stored.codes, column.codes
            )
            if not same:
                del obs[name]
                order.remove(name)
        if name not in order:
            write_elem(obs, name, column)
            order.append(name)
            obs.attrs["column-order"] = order
            print(f"  obs column {name} written", flush=True)
        counted = np.bincount(column.codes, minlength=n_batches)
        sizes[name] = {
            "batches": n_batches,
            "fewest_cells": int(counted.min()),
            "median_cells": float(np.median(counted)),
            "most_cells": int(counted.max()),
        }
    return sizes


# ----------------------------------------------------------------------------- child runs


def child(timeout: int, *args: str) -> list[str]:
    """A measured child run, stopped (with its Dask workers: timeout(1) signals its own process
    group) after ``timeout`` seconds."""
    return [
        "timeout",
        "--kill-after=30",
        str(timeout),
        sys.executable,
        "-m",
        "benchmarks.batch_hvg",
        "--child",
        *args,
    ]


def run_analysis(engine: str, store: str, out: str, rows: int, top: int, key: str) -> dict:
    """One analysis with ``analyze_store`` (``key`` "-": no batch_key)."""
    from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store

    start = time.perf_counter()
    analyze_store(
        store,
        out,
        task_cells=rows,
        cluster=ClusterSettings(workers=WORKERS, memory_mb=MEMORY_MB),
        params=AnalysisParams(
            flavor=FLAVOR,
            n_top_genes=top,
            n_comps=N_COMPS,
            engine=engine,
            batch_key=None if key == "-" else key,
        ),
    )
    return {"analysis_seconds": round(time.perf_counter() - start, 2)}


def run_warmup(store: str, out: str, rows: int, top: int, key: str) -> dict:
    """Compile and cache the fused engine's kernels: the plain ones on chunkatlas's tiny warm-up
    stores, the batched ones in an analysis of ``store`` with ``key``."""
    from chunkatlas.analysis import AnalysisParams, warmup

    start = time.perf_counter()
    warmup(AnalysisParams(flavor=FLAVOR, engine="fused"))
    detail = {"tiny_stores_seconds": round(time.perf_counter() - start, 2)}
    return {**detail, **run_analysis("fused", store, out, rows, top, key)}


def child_main(args: list[str]) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    steps = StepLog()
    kind, *rest = args
    engine, store, out, rows, top, key = rest
    if kind == "warmup":
        detail = run_warmup(store, out, int(rows), int(top), key)
    elif kind == "engine":
        detail = run_analysis(engine, store, out, int(rows), int(top), key)
    else:
        raise SystemExit(f"unknown child run {kind!r}")
    detail["steps"] = steps.steps
    print(json.dumps(detail))


# ----------------------------------------------------------------------------- measuring


def result_seconds(out: Path) -> dict[str, float]:
    """``uns['chunkatlas']['seconds']`` of the result store ``out`` (each step's seconds)."""
    import zarr
    from anndata.io import read_elem

    if not out.exists():
        return {}
    uns = read_elem(zarr.open_group(out, mode="r")["uns"])
    return {step: float(s) for step, s in uns.get("chunkatlas", {}).get("seconds", {}).items()}


def measured(label: str, argv: list[str], out: Path, rep: int) -> Run:
    """``argv`` measured, its result's step seconds read back into its detail, ``out`` removed."""
    shutil.rmtree(out, ignore_errors=True)
    run = measure(label, argv)
    if run.returncode == TIMED_OUT:
        run.detail["timed_out"] = True
        sys.stderr.write(f"{label} stopped by the timeout after {run.seconds:.0f} s\n")
    elif run.returncode == 0:
        run.detail["uns_seconds"] = result_seconds(out)
    shutil.rmtree(out, ignore_errors=True)
    print_run(f"{label:22s}", rep, run, pss=True)
    return run


def median_steps(runs: list[Run]) -> dict[str, float]:
    """Each step's median seconds over the successful ``runs`` (from their results' uns)."""
    per_step: dict[str, list[float]] = {}
    for run in runs:
        for step, seconds in run.detail.get("uns_seconds", {}).items():
            per_step.setdefault(step, []).append(seconds)
    from chunkatlas.analysis import FUSED_STEPS, SCANPY_STEPS

    order = {step: i for i, step in reversed(list(enumerate((*FUSED_STEPS, *SCANPY_STEPS))))}
    ordered = sorted(per_step, key=lambda step: order.get(step, len(order)))
    return {step: round(statistics.median(per_step[step]), 2) for step in ordered}


def summary(runs: list[Run]) -> dict:
    """hvg_pca.py's summary of ``runs`` with the median step seconds and any timeouts."""
    row = summarise(runs)
    row["uns_seconds"] = median_steps([r for r in runs if r.returncode == 0])
    rests = [r.seconds - sum(r.detail["uns_seconds"].values()) for r in runs if r.returncode == 0]
    if rests:  # wall time outside the recorded steps
        row["rest_seconds"] = round(statistics.median(rests), 2)
    stopped = [r.seconds for r in runs if r.detail.get("timed_out")]
    if stopped:
        row["timed_out_after_s"] = stopped
    ok = [r for r in runs if r.returncode == 0]
    if ok:  # what the peak was made of: the driver (with the scheduler) and the Dask workers
        row["at_peak_driver_mb"] = statistics.median(peak_part(r, driver=True) for r in ok)
        row["at_peak_workers_mb"] = statistics.median(peak_part(r, driver=False) for r in ok)
    return row


def peak_part(run: Run, *, driver: bool) -> float:
    """MB of the driver's process or of the Dask workers at ``run``'s RSS peak."""
    parts = run.peak.get("mb", {})
    if not driver:
        return parts.get("Dask worker", 0)
    # every other process but timeout(1) itself: the analysing interpreter
    return sum(mb for label, mb in parts.items() if not label.startswith(("Dask", "timeout")))


# ----------------------------------------------------------------------------- report


def ratio(numerator: dict, denominator: dict) -> dict:
    """``numerator`` / ``denominator`` of median wall and CPU seconds (a lower bound where the
    numerator's runs all timed out)."""
    if "seconds_median" not in denominator:
        return {}
    if "seconds_median" in numerator:
        return {
            "wall": round(numerator["seconds_median"] / denominator["seconds_median"], 2),
            "cpu": round(numerator["cpu_seconds_median"] / denominator["cpu_seconds_median"], 2),
        }
    if numerator.get("timed_out_after_s"):
        least = min(numerator["timed_out_after_s"])
        return {"wall_at_least": round(least / denominator["seconds_median"], 2)}
    return {}


def verdict(found: dict, target: float, *, at_least: bool) -> str:
    if "wall" in found:
        met = found["wall"] >= target if at_least else found["wall"] <= target
        return f"{found['wall']:.2f}x ({'met' if met else 'missed'})"
    if "wall_at_least" in found:
        met = found["wall_at_least"] >= target
        return f">{found['wall_at_least']:.2f}x ({'met' if met else 'unknown'}; timed out)"
    return "-"


def print_table(report: dict) -> None:
    print(
        f"\n{report['cells']:,} cells x {report['genes']:,} genes, {report['rows']:,} cells per "
        f"task, flavor {FLAVOR}, {report['n_top_genes']} HVGs, {N_COMPS} PCs, {WORKERS} workers"
    )
    head = f"{'run':24s} {'runs':>4s} {'median s':>9s} {'min s':>7s} {'CPU s':>7s} "
    print(head + f"{'peak RSS MB':>12s} {'peak PSS MB':>12s} {'at peak: driver + workers MB':>29s}")
    rows = {"fused, no batch_key": report["plain"]}
    for name, entry in report["batches"].items():
        rows[f"fused, {name}"] = entry["fused"]
        rows[f"stock scanpy, {name}"] = entry["scanpy"]
    for label, row in rows.items():
        if "seconds_median" not in row:
            stopped = row.get("timed_out_after_s")
            what = f"timed out after {stopped} s" if stopped else "failed" if row["runs"] else ""
            print(f"{label:24s} " + (what or "not run"))
            continue
        print(
            f"{label:24s} {row['runs']:4d} {row['seconds_median']:9.1f} "
            f"{row['seconds_min']:7.1f} {row['cpu_seconds_median']:7.1f} "
            f"{row['peak_rss_mb']:12.0f} {row['peak_pss_mb']:12.0f} "
            f"{row['at_peak_driver_mb']:17.0f} + {row['at_peak_workers_mb']:5.0f}"
        )
    print(
        f"\n{'batch_key':12s} {'stock / fused-batched (>= 3x)':>32s} "
        f"{'fused-batched / fused-plain (<= 1.25x)':>40s}"
    )
    for name, entry in report["batches"].items():
        stock = verdict(entry["stock_over_fused"], STOCK_TARGET, at_least=True)
        overhead = verdict(entry["batched_over_plain"], OVERHEAD_TARGET, at_least=False)
        print(f"{name:12s} {stock:>32s} {overhead:>40s}")
    print(
        "\neach step's seconds (uns['chunkatlas']['seconds'], median over runs; rest: wall time "
        "outside the steps, median: imports, cluster, obs and var, writing the result and, with "
        "batches, their reading and the per-batch HVG selection between the fused passes)"
    )
    step_rows = {"fused, no batch_key": report["plain"]}
    for name, entry in report["batches"].items():
        step_rows[f"fused, {name}"] = entry["fused"]
    for name, entry in report["batches"].items():
        step_rows[f"stock scanpy, {name}"] = entry["scanpy"]
    for label, row in step_rows.items():
        steps = row.get("uns_seconds", {})
        if not steps:
            continue
        shown = [f"{k} {v:.2f}" for k, v in steps.items()] + [f"rest {row['rest_seconds']:.1f}"]
        print(f"  {label:24s} " + ", ".join(shown))


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="40,000 cells x 5,000 genes")
    parser.add_argument("--cells", type=int, default=None, help="cells in the store")
    parser.add_argument("--batches", default=None, help="batch counts, e.g. 100,500")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each fused setting")
    parser.add_argument("--stock-repeats", type=int, default=None, help="runs of stock scanpy")
    parser.add_argument("--timeout", type=int, default=None, help="seconds before a run stops")
    parser.add_argument("--data", default=str(HERE / "data"), help="where stores are cached")
    parser.add_argument("--json", default=None, help="where to write the figures")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return
    setup = QUICK if args.quick else FULL
    changes = {
        "cells": args.cells,
        "batches": tuple(int(b) for b in args.batches.split(",")) if args.batches else None,
        "repeats": args.repeats,
        "stock_repeats": args.stock_repeats,
        "timeout": args.timeout,
    }
    setup = replace(setup, **{k: v for k, v in changes.items() if v is not None})
    json_path = Path(
        args.json or HERE / "results" / ("batch_hvg-quick.json" if args.quick else "batch_hvg.json")
    )
    data = Path(args.data).resolve()
    data.mkdir(parents=True, exist_ok=True)
    # the children run ``-m benchmarks.batch_hvg`` from wherever this was started
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
    )
    scratch = data / "scratch-batch_hvg"
    out = scratch / "hvg_pca.zarr"
    scratch.mkdir(exist_ok=True)

    report: dict = {"machine": machine(), "quick": args.quick, **asdict(setup)}
    report.update(rows=setup.rows, flavor=FLAVOR, n_comps=N_COMPS, workers=WORKERS)
    print(f"machine: {report['machine']}", flush=True)
    t0 = time.perf_counter()
    print("making data ...", flush=True)
    store = make_store(setup, data)
    report["store"] = str(store)
    report["batch_sizes"] = add_batch_columns(store, setup.batches)
    for name, sizes in report["batch_sizes"].items():
        print(
            f"  {name}: {sizes['batches']} batches of {sizes['fewest_cells']:,} to "
            f"{sizes['most_cells']:,} cells (median {sizes['median_cells']:,.0f})",
            flush=True,
        )

    def argv(kind: str, engine: str, key: str) -> list[str]:
        common = (str(store), str(out), str(setup.rows), str(setup.n_top_genes))
        return child(setup.timeout, kind, engine, *common, key)

    first = column_name(setup.batches[0])
    warm = measured(f"warm-up (fused, {first})", argv("warmup", "fused", first), out, 0)
    report["warmup"] = asdict(warm)

    plain: list[Run] = []
    fused: dict[str, list[Run]] = {column_name(b): [] for b in setup.batches}
    stock: dict[str, list[Run]] = {column_name(b): [] for b in setup.batches}
    for rep in range(max(setup.repeats, setup.stock_repeats)):
        if rep < setup.repeats:
            plain.append(measured("fused, no batch_key", argv("engine", "fused", "-"), out, rep))
        for name in fused:
            if rep < setup.repeats:
                run = measured(f"fused, {name}", argv("engine", "fused", name), out, rep)
                fused[name].append(run)
            if rep < setup.stock_repeats:
                run = measured(f"stock scanpy, {name}", argv("engine", "scanpy", name), out, rep)
                stock[name].append(run)

    report["plain"] = summary(plain)
    report["batches"] = {}
    for name in fused:
        entry = {"fused": summary(fused[name]), "scanpy": summary(stock[name])}
        entry["stock_over_fused"] = ratio(entry["scanpy"], entry["fused"])
        entry["batched_over_plain"] = ratio(entry["fused"], report["plain"])
        report["batches"][name] = entry
    report["runs"] = [asdict(r) for r in chain(plain, *fused.values(), *stock.values())]
    shutil.rmtree(scratch, ignore_errors=True)
    report["total_seconds"] = round(time.perf_counter() - t0)
    print_table(report)
    print(f"\ntotal {report['total_seconds']} s")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
