"""Speed and memory targets of round four, measured in one run, side by side.

    python -m benchmarks.speed_targets [--only 72k,500k] [--repeats 1] [--skip-scale-run]
                                       [--json FILE]

The stores, made once in benchmarks/data from the 500,000-cell benchmark store
(``python -m benchmarks.hvg_pca`` makes it) and cut to each scale's first cells:

* ``anndata``: as anndata writes with its defaults (zarr v3: automatic shards, zstd) and no
  ``raw_sum`` in obs, what a user brings;
* ``packed`` and ``zstd``: that store as the workflow writes it (``rechunk_store``: 10,000
  cells per chunk, unsharded, ``raw_sum`` and ``nnz`` in obs), with the ``packed`` preset (the
  default) and the ``zstd`` one;
* ``sharded``: the same with ``packed`` in shards of 10 chunks of 1,000 cells (as many objects
  as ``packed``, inner chunks a tenth the size).

At each scale, after one uncounted warm-up of the fused engine, every repeat runs each of
these in a subprocess of its own (2 single-threaded Dask workers, seurat, 2,000 HVGs, 50 PCs,
cells per task as ``chunkatlas analyze`` chooses them from the store, ``cells_per_task_of``),
measured by ``hvg_pca.measure`` (wall seconds of the subprocess, peak RSS of its process tree):

* the fused engine on each store;
* stock scanpy on Dask (scanpy's own Dask paths on ``read_dask_backed``) on each store;
* plain ``anndata.read_zarr`` of each store (the whole store into memory: how any other tool
  reads it), timed inside its process after its imports.

Then, unless --skip-scale-run, the whole workflow at 2,000,000 cells
(``benchmarks/scale_run.py`` on the geometry study's 2M source store) for its peak memory.
The last lines are the targets' table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.first_run import anndata_store
from benchmarks.hvg_pca import Run, child, machine, measure, print_run

DATA = Path(__file__).parent / "data"
SCALES = {"72k": 72_000, "500k": 500_000}
#: The workflow's re-writes: codec preset, cells per chunk, chunks per shard.
REWRITES = {
    "packed": ("packed", 10_000, 1),
    "zstd": ("zstd", 10_000, 1),
    "sharded": ("packed", 1_000, 10),
}
STORES = ("anndata", *REWRITES)
CHUNK = 10_000
TOP_GENES = 2000
SCALE_RUN_STORE = DATA / "synthetic-census-geometry-2000000-20000.zarr"


def stores_at(cells: int) -> dict[str, Path]:
    """The anndata-written store of ``cells`` cells and the workflow's re-writes of it."""
    from chunkatlas.rewrite import rechunk_store

    stores = {"anndata": anndata_store(cells)}
    for name, (codec, chunk, shard) in REWRITES.items():
        stores[name] = DATA / f"workflow-{cells // 1000}k-20000-{chunk}-{shard}-{codec}.zarr"
        if not stores[name].exists():
            start = time.perf_counter()
            rechunk_store(stores["anndata"], stores[name], chunk, shard=shard, codec=codec)
            print(f"  {stores[name].name}: {time.perf_counter() - start:.0f} s", flush=True)
    return stores


def rows_for(store: Path) -> int:
    """Cells per task as ``chunkatlas analyze`` takes them from the store."""
    import zarr

    from chunkatlas.store import cells_per_task_of

    return cells_per_task_of(zarr.open_group(store, mode="r")["X"])[0]


def read_whole(store: str) -> None:
    """Child: plain ``anndata.read_zarr`` of ``store``; prints the seconds it took."""
    import anndata as ad

    start = time.perf_counter()
    adata = ad.read_zarr(store)
    print(
        json.dumps({"analysis_seconds": round(time.perf_counter() - start, 2), "nnz": adata.X.nnz})
    )


def runs_at(name: str, cells: int, repeats: int, scratch: Path) -> dict[str, list[Run]]:
    """Every measurement at one scale, ``repeats`` times, after one uncounted warm-up."""
    stores = stores_at(cells)
    out = str(scratch / "out.zarr")

    rows = {name: rows_for(store) for name, store in stores.items()}
    print(f"  cells per task at {name}: {rows}", flush=True)

    def engine(kind: str, store: str) -> list[str]:
        return child("engine", kind, str(stores[store]), out, str(rows[store]), str(TOP_GENES))

    plan = {f"fused {s}": engine("fused", s) for s in STORES}
    plan |= {f"scanpy {s}": engine("scanpy", s) for s in STORES}
    plan |= {
        f"read_zarr {s}": [sys.executable, "-m", "benchmarks.speed_targets", "--read", str(p)]
        for s, p in stores.items()
    }
    runs: dict[str, list[Run]] = {label: [] for label in plan}
    for rep in range(-1, repeats):
        for label, argv in plan.items():
            if rep < 0 and label != "fused packed":
                continue
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            run = measure(label, argv)
            if rep >= 0:
                runs[label].append(run)
            print_run(f"{name} {label:16s}" + (" (warm-up)" if rep < 0 else ""), max(rep, 0), run)
    return runs


def median(runs: list[Run], what: str = "seconds") -> float:
    ok = [r for r in runs if r.returncode == 0]
    if not ok:
        return float("nan")
    if what == "inside":
        return statistics.median(r.detail.get("analysis_seconds", float("nan")) for r in ok)
    return statistics.median(getattr(r, what) for r in ok)


def table(figures: dict, scale_run: dict | None) -> list[tuple[str, str, str]]:
    """(target, figure, met?) rows."""
    rows = []

    def ratio(scale: str, slow: str, fast: str) -> float:
        runs = figures[scale]
        return median(runs[slow]) / median(runs[fast])

    for scale, goal in (("500k", 5.0), ("72k", 3.0)):
        if scale in figures:
            r = ratio(scale, "scanpy anndata", "fused packed")
            rows.append(
                (
                    f"fused on the workflow's store / stock on anndata's, {scale}, >= {goal}x",
                    f"{r:.2f}x",
                    r >= goal,
                )
            )
    for scale, goal in (("500k", 3.5), ("72k", 3.0)):
        if scale in figures:
            r = ratio(scale, "scanpy anndata", "fused anndata")
            rows.append(
                (f"anndata's store, both engines, {scale}, >= {goal}x", f"{r:.2f}x", r >= goal)
            )
    for scale in figures:
        runs = figures[scale]
        for name in REWRITES:
            read = median(runs[f"read_zarr {name}"], "inside") / median(
                runs["read_zarr anndata"], "inside"
            )
            stock = ratio(scale, f"scanpy {name}", "scanpy anndata")
            rows.append(
                (
                    f"plain readers on the workflow's {name} store / anndata's, {scale}, <= 1.1x",
                    f"read_zarr {read:.2f}x, scanpy on Dask {stock:.2f}x",
                    max(read, stock) <= 1.1,
                )
            )
    if "500k" in figures:
        rss = median(figures["500k"]["fused packed"], "peak_rss_mb")
        rows.append(
            ("peak RSS, fused, 500k workflow's store, <= 1,300 MB", f"{rss:,.0f} MB", rss <= 1300)
        )
    if "72k" in figures:
        rss = median(figures["72k"]["fused anndata"], "peak_rss_mb")
        rows.append(
            ("peak RSS, fused, 72k anndata store, <= 1,000 MB", f"{rss:,.0f} MB", rss <= 1000)
        )
    if scale_run:
        rss = scale_run["run"]["peak_rss_mb"]
        rows.append(
            (
                "2M-cell workflow, whole-run peak RSS, <= 2,000 MB",
                f"{rss:,.0f} MB (PSS {scale_run['run']['peak_pss_mb']:,.0f})",
                rss <= 2000,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(SCALES), help="scales, of 72k,500k")
    parser.add_argument("--repeats", type=int, default=1, help="counted runs of each")
    parser.add_argument("--skip-scale-run", action="store_true", help="no 2M workflow run")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--read", default=None, help=argparse.SUPPRESS)  # child: read_zarr
    args = parser.parse_args()
    if args.read:
        read_whole(args.read)
        return
    print(f"machine: {machine()}", flush=True)
    scratch = DATA / "scratch-speed-targets"
    figures = {}
    for name in args.only.split(","):
        if name not in SCALES:
            sys.exit(f"--only: {name!r} is not one of {', '.join(SCALES)}")
        figures[name] = runs_at(name, SCALES[name], args.repeats, scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    scale_run = None
    if not args.skip_scale_run:
        report = DATA / "scratch-scale-run.json"
        argv = [sys.executable, str(Path(__file__).parent / "scale_run.py")]
        argv += ["--store", str(SCALE_RUN_STORE), "--json", str(report)]
        subprocess.run(argv, check=True)
        scale_run = json.loads(report.read_text())
        report.unlink()

    print("\n| run | " + " | ".join(figures) + " |\n| --- |" + " ---: |" * len(figures))
    for label in next(iter(figures.values())):
        cells = []
        for runs in figures.values():
            inside = median(runs[label], "inside")
            cells.append(
                f"{median(runs[label]):.1f} s ({inside:.1f} inside), "
                f"{median(runs[label], 'peak_rss_mb'):,.0f} MB"
            )
        print(f"| {label} | " + " | ".join(cells) + " |")
    for scale, by_label in figures.items():
        for label, runs in by_label.items():
            steps = min(runs, key=lambda r: r.seconds).detail.get("steps", {}) if runs else {}
            if steps:
                print(
                    f"  {scale} {label}: " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items())
                )
    print("\n| target | figure | met |\n| --- | --- | --- |")
    rows = table(figures, scale_run)
    for target, figure, met in rows:
        print(f"| {target} | {figure} | {'met' if met else 'not met'} |")
    if args.json:
        dump = {
            name: {label: [vars(r) for r in rs] for label, rs in runs.items()}
            for name, runs in figures.items()
        }
        Path(args.json).write_text(
            json.dumps({"machine": machine(), "runs": dump, "scale_run": scale_run}, indent=1)
        )


if __name__ == "__main__":
    main()
