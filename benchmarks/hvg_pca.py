"""Benchmark HVG/PCA: the fused engine, stock scanpy on Dask and in-memory scanpy.

    python benchmarks/hvg_pca.py [--quick] [--repeats N] [--data DIR] [--json FILE]

Part 1 makes synthetic stores (benchmarks/synth.py: ~70,000 and 500,000 cells x 20,000 genes,
~5 % non-zero, and BPCells' PCA benchmark's shape, 480,000 cells x 58,900 genes with ~2,000
values per cell; --quick: 10,000 and 40,000 cells x 5,000 genes), rechunks them as the workflow
does (10,000 cells per chunk, the default codec preset) and analyses each with every engine
(in-memory scanpy where it fits), alternating, each run in its own subprocess: wall
time of the subprocess (interpreter start, imports, cluster start, analysis, result written) and
peak memory summed over the process tree (the driver and its Dask workers), sampled with psutil
every 50 ms, both RSS (what the targets are stated in; shared libraries count once per process)
and PSS (shared pages split between processes).

Part 2 measures end to end from a SOMA source (a demo atlas, one tissue): chunkatlas
(fetch + rechunk + consolidate + fused analysis) against the TileDB-SOMA tutorial's path
(``query.to_anndata(layer, dask=dict(chunk_size=N))`` then scanpy on Dask), also alternating.

Every analysis uses 2 single-threaded Dask workers (as ``snakemake --cores 2``), flavor seurat,
2,000 HVGs (500 with --quick) and 50 PCs.  Stores are cached in --data between invocations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENGINES = ("fused", "scanpy", "memory")
#: Not run by default (``--engines fused,fused-zarrs``): the fused engine with zarrs (Rust) as
#: zarr's codec pipeline, in the driver and, through the environment, in every worker.
ZARRS = "fused-zarrs"
#: Not run by default either: the fused engine on thread-based workers (a LocalCluster with
#: processes=False inside the analysing process), which start faster but share one process.
THREADS = "fused-threads"
#: The fused engine on a cluster already running, as every analyze job of a workflow run after
#: the first (chunkatlas.analysis._shared_cluster); an unrecorded run starts the cluster.
ON_RUN_CLUSTER = "fused-run"
VARIANTS = (ZARRS, THREADS, ON_RUN_CLUSTER)
E2E_PATHS = ("chunkatlas", "tutorial")


@dataclass(frozen=True)
class Scale:
    """One synthetic store: its size and the analysis settings run on it."""

    name: str
    n_cells: int
    n_genes: int
    rows: int
    n_top_genes: int
    engines: tuple[str, ...]
    depth: tuple[float, float] = (0.5, 1.0)  # per-cell thinning of the pool's counts


@dataclass(frozen=True)
class Plan:
    """What one invocation measures."""

    pool_cells: int
    scales: tuple[Scale, ...]
    atlas_cells: int
    atlas_genes: int
    e2e_rows: int
    e2e_top_genes: int
    repeats: int
    slow_repeats: int  # repeats of the slowest runs (stock scanpy at the largest scale)


FULL = Plan(
    pool_cells=20_000,
    scales=(
        Scale("70k", 70_000, 20_000, 10_000, 2000, ENGINES),
        Scale("500k", 500_000, 20_000, 10_000, 2000, ENGINES),
        # BPCells' PCA benchmark's shape: 480k cells x 58.9k genes, ~2,000 values per cell
        Scale("bpcells", 480_000, 58_900, 10_000, 2000, ENGINES, depth=(0.3, 0.52)),
    ),
    atlas_cells=80_000,
    atlas_genes=8_000,
    e2e_rows=10_000,
    e2e_top_genes=2000,
    repeats=3,
    slow_repeats=1,
)
QUICK = Plan(
    pool_cells=4_000,
    scales=(
        Scale("10k", 10_000, 5_000, 2_500, 500, ENGINES),
        Scale("40k", 40_000, 5_000, 2_500, 500, ("fused",)),
    ),
    atlas_cells=12_000,
    atlas_genes=2_000,
    e2e_rows=2_000,
    e2e_top_genes=500,
    repeats=1,
    slow_repeats=1,
)


# ----------------------------------------------------------------------------- measuring


@dataclass
class Run:
    """One subprocess: what it was and what it cost."""

    label: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    peak_pss_mb: float
    returncode: int
    detail: dict = field(default_factory=dict)
    peak: dict = field(default_factory=dict)  # when the RSS peak was, and what made it up


def tree_memory(procs: list, *, pss: bool) -> int:
    """RSS (or PSS, which reads smaps and costs more) in bytes summed over ``procs``."""
    return sum(memory_of(procs, pss=pss).values())


def memory_of(procs: list, *, pss: bool = False) -> dict:
    """RSS (or PSS) in bytes of each of ``procs`` still running."""
    import psutil

    found = {}
    for proc in procs:
        try:
            found[proc] = proc.memory_full_info().pss if pss else proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def process_label(proc) -> str:
    """What a process of a measured run is: a Snakemake job's rule, a Dask worker, ..."""
    try:
        command = " ".join(proc.cmdline())
    except Exception:  # gone since it was sampled
        return "?"
    if ".snakemake/scripts/" in command:  # .snakemake/scripts/tmpXXXX.RULE.py
        return "job " + command.split(".snakemake/scripts/")[1].split(".")[1]
    for mark, label in (
        ("chunkatlas.analysis._shared_cluster", "the run's Dask cluster"),
        ("multiprocessing", "Dask worker"),
        ("snakemake", "snakemake"),
    ):
        if mark in command:
            return label
    return command[:40]


def run_clusters_of(pid: int) -> list:
    """The shared Dask clusters a snakemake process ``pid`` started
    (chunkatlas.analysis._shared_cluster),
    with their workers: once the analyze job that started one ends, they are no longer in the
    snakemake process's tree."""
    import psutil

    mark = f"chunkatlas-clusters/{pid}/"
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(mark in part for part in proc.info["cmdline"] or ()):
            try:
                found += [proc, *proc.children(recursive=True)]
            except psutil.Error:
                continue
    return found


def measure(
    label: str, argv: list[str], interval: float = 0.05, cluster_owner: int | None = None
) -> Run:
    """Run ``argv`` in a subprocess, sampling the memory of its process tree and of the shared
    Dask clusters of ``cluster_owner`` (default: the subprocess, e.g. snakemake): RSS every
    ``interval`` seconds, PSS and the list of processes every tenth sample (cheap enough not to
    slow the run on 2 cores)."""
    import resource

    import psutil

    def cpu() -> float:  # user + system time of every descendant reaped so far
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    peak = [0, 0]
    moment: dict = {}
    cpu_before = cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    done = threading.Event()

    def sample() -> None:
        procs, tick = [root], 0
        while not done.is_set():
            if tick % 10 == 0:
                try:
                    clusters = run_clusters_of(cluster_owner or root.pid)
                    found = [root, *root.children(recursive=True), *clusters]
                    procs = list({proc.pid: proc for proc in found}.values())
                except psutil.Error:
                    pass
                peak[1] = max(peak[1], tree_memory(procs, pss=True))
            each = memory_of(procs)
            if sum(each.values()) > peak[0]:
                peak[0] = sum(each.values())
                by_label: dict[str, float] = {}
                for one, rss in each.items():
                    label = process_label(one)
                    by_label[label] = by_label.get(label, 0) + round(rss / 2**20)
                moment.update(at_s=round(time.perf_counter() - start, 1), mb=by_label)
            tick += 1
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    cpu_seconds = cpu() - cpu_before
    done.set()
    sampler.join()
    detail = {}
    for line in out.splitlines():
        if line.startswith("{"):
            detail = json.loads(line)
    if proc.returncode:
        sys.stderr.write(f"{label} failed ({proc.returncode}):\n{err[-3000:]}\n")
    return Run(
        label,
        round(seconds, 2),
        round(cpu_seconds, 2),
        round(peak[0] / 2**20),
        round(peak[1] / 2**20),
        proc.returncode,
        detail,
        moment,
    )


def fits_in_memory(store: Path) -> bool:
    """Whether in-memory scanpy on ``store`` (about 4 copies of X at its peak) fits in the
    memory available now, with a quarter to spare."""
    import psutil
    import zarr

    nnz = zarr.open_group(store, mode="r")["X"]["data"].shape[0]
    need = 4 * nnz * 8
    available = psutil.virtual_memory().available
    if need > 0.75 * available:
        print(
            f"  in-memory scanpy skipped: needs ~{need / 2**30:.0f} GiB, "
            f"{available / 2**30:.0f} GiB available",
            flush=True,
        )
        return False
    return True


def child(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", *args]


# ----------------------------------------------------------------------------- child runs


def run_engine(engine: str, store: str, out: str, rows: int, n_top_genes: int) -> dict:
    """One analysis (in a subprocess of its own); returns what to report."""
    start = time.perf_counter()
    if engine == "memory":
        import anndata as ad
        import scanpy as sc

        from chunkatlas.analysis import AnalysisParams, hvg_pca, write_result

        adata = ad.read_zarr(store)
        result = hvg_pca(adata, AnalysisParams(n_top_genes=n_top_genes, engine="scanpy"))
        write_result(result, out)
        del sc
    elif engine == "scanpy":  # stock: scanpy's Dask code paths on the lazily read store
        from chunkatlas.analysis import (
            AnalysisParams,
            ClusterSettings,
            dask_client,
            hvg_pca,
            write_result,
        )
        from chunkatlas.store import read_dask_backed

        with dask_client(ClusterSettings(workers=2, memory_mb=8192)):
            result = hvg_pca(
                read_dask_backed(store, rows),
                AnalysisParams(n_top_genes=n_top_genes, engine="scanpy"),
            )
        write_result(result, out)
    elif engine == THREADS:
        from distributed import LocalCluster

        from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store

        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as local:
            analyze_store(
                store,
                out,
                task_cells=rows,
                cluster=ClusterSettings(
                    workers=2, memory_mb=8192, scheduler_address=local.scheduler_address
                ),
                params=AnalysisParams(n_top_genes=n_top_genes, engine="fused"),
            )
    elif engine == ON_RUN_CLUSTER:
        from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store

        analyze_store(
            store,
            out,
            task_cells=rows,
            cluster=ClusterSettings(workers=2, memory_mb=8192, shared_cluster=True),
            params=AnalysisParams(n_top_genes=n_top_genes, engine="fused"),
        )
    else:
        if engine == ZARRS:  # before zarr is imported here or in a worker
            os.environ["ZARR_CODEC_PIPELINE__PATH"] = "zarrs.ZarrsCodecPipeline"
        from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store

        analyze_store(
            store,
            out,
            task_cells=rows,
            cluster=ClusterSettings(workers=2, memory_mb=8192),
            params=AnalysisParams(n_top_genes=n_top_genes, engine="fused"),
        )
    return {"analysis_seconds": round(time.perf_counter() - start, 2)}


def run_chunkatlas_e2e(atlas: str, work: str, rows: int, n_top_genes: int) -> dict:
    """chunkatlas from the SOMA source: fetch, rechunk, consolidate, fused analysis."""
    from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store
    from chunkatlas.ingest import fetch_tissue
    from chunkatlas.rewrite import consolidate_store, rechunk_store

    work = Path(work)
    steps = {}
    start = time.perf_counter()
    fetch_tissue(atlas, "lung", work / "fetched.zarr", chunk_rows=rows)
    steps["fetch"] = round(time.perf_counter() - start, 2)
    rechunk_store(work / "fetched.zarr", work / "store.zarr", rows)
    steps["rechunk"] = round(time.perf_counter() - start - sum(steps.values()), 2)
    consolidate_store(work / "store.zarr", work / "store.manifest.json")
    steps["consolidate"] = round(time.perf_counter() - start - sum(steps.values()), 2)
    analyze_store(
        work / "store.zarr",
        work / "hvg_pca.zarr",
        task_cells=rows,
        cluster=ClusterSettings(workers=2, memory_mb=8192),
        params=AnalysisParams(n_top_genes=n_top_genes, engine="fused"),
    )
    steps["analyze"] = round(time.perf_counter() - start - sum(steps.values()), 2)
    return {"steps": steps}


def run_tutorial_e2e(atlas: str, work: str, rows: int, n_top_genes: int) -> dict:
    """The TileDB-SOMA Dask tutorial's path: to_anndata(dask=...) then scanpy on Dask."""
    import tiledbsoma

    from chunkatlas.analysis import (
        AnalysisParams,
        ClusterSettings,
        dask_client,
        hvg_pca,
        write_result,
    )
    from chunkatlas.ingest import DEFAULT_OBS_FILTER, build_obs_filter

    start = time.perf_counter()
    with (
        dask_client(ClusterSettings(workers=2, memory_mb=8192)),
        tiledbsoma.Experiment.open(atlas) as experiment,
    ):
        query = experiment.axis_query(
            "RNA",
            obs_query=tiledbsoma.AxisQuery(
                value_filter=build_obs_filter(DEFAULT_OBS_FILTER, "lung")
            ),
        )
        adata = query.to_anndata("raw", dask={"chunk_size": rows})
        adata.obs.index = adata.obs.index.astype(str)
        adata.var.index = adata.var["feature_id"].astype(str).to_numpy()
        result = hvg_pca(adata, AnalysisParams(n_top_genes=n_top_genes, engine="scanpy"))
    write_result(result, Path(work) / "hvg_pca.zarr")
    return {"steps": {"query+analyze": round(time.perf_counter() - start, 2)}}


class StepLog:
    """Collects chunkatlas's "<step> done in <s> s" log records and when the cluster came up."""

    def __init__(self) -> None:
        import logging

        self.start = time.perf_counter()
        self.steps: dict[str, float] = {}
        collector = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                message = record.getMessage()
                if record.name == "chunkatlas.analysis._client":
                    collector.steps["(cluster up at)"] = round(
                        time.perf_counter() - collector.start, 2
                    )
                elif " done in " in message and isinstance(record.args, tuple):
                    collector.steps[str(record.args[0])] = float(record.args[-1])

        logger = logging.getLogger("chunkatlas")
        logger.setLevel(logging.INFO)
        logger.addHandler(Handler())


def child_main(args: list[str]) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    steps = StepLog()
    kind, *rest = args
    if kind == "engine":
        engine, store, out, rows, top = rest
        detail = run_engine(engine, store, out, int(rows), int(top))
    elif kind == "e2e":
        path, atlas, work, rows, top = rest
        runner = run_chunkatlas_e2e if path == "chunkatlas" else run_tutorial_e2e
        detail = runner(atlas, work, int(rows), int(top))
    else:
        raise SystemExit(f"unknown child run {kind!r}")
    detail["steps"] = {**steps.steps, **detail.get("steps", {})}
    print(json.dumps(detail))


# ----------------------------------------------------------------------------- data


def make_stores(plan: Plan, data: Path) -> dict[str, Path]:
    """The synthetic stores of ``plan`` in ``data`` (made once, then reused), rechunked as the
    workflow writes them: ``rows`` cells per chunk, the default codec preset."""
    from chunkatlas.rewrite import DEFAULT_CODEC, rechunk_store

    written = write_synthetic(plan, data)
    stores = {}
    for scale in plan.scales:
        stores[scale.name] = data / f"{written[scale.name].stem}-{DEFAULT_CODEC}.zarr"
        if not stores[scale.name].exists():
            start = time.perf_counter()
            rechunk_store(written[scale.name], stores[scale.name], scale.rows, codec=DEFAULT_CODEC)
            print(
                f"  store {scale.name}, rechunked ({DEFAULT_CODEC}): "
                f"{time.perf_counter() - start:.0f} s",
                flush=True,
            )
    return stores


def write_synthetic(plan: Plan, data: Path) -> dict[str, Path]:
    """The synthetic stores of ``plan`` as written by benchmarks/synth.py (anndata's codecs)."""
    sys.path.insert(0, str(HERE))
    from synth import make_pool, write_store

    # "census": obs records raw_sum and nnz per cell (the analysis then skips its pass 1)
    stores = {s.name: data / f"synthetic-census-{s.name}-{s.n_genes}.zarr" for s in plan.scales}
    missing = [s for s in plan.scales if not stores[s.name].exists()]
    pools = {}
    for scale in missing:
        if scale.n_genes not in pools:
            start = time.perf_counter()
            pools[scale.n_genes] = make_pool(plan.pool_cells, scale.n_genes)
            print(
                f"  pool of {plan.pool_cells:,} cells x {scale.n_genes:,} genes: "
                f"{time.perf_counter() - start:.0f} s",
                flush=True,
            )
        start = time.perf_counter()
        write_store(
            stores[scale.name],
            pools[scale.n_genes],
            scale.n_cells,
            chunk=scale.rows,
            depth=scale.depth,
        )
        print(f"  store {scale.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return stores


def make_atlas(plan: Plan, data: Path) -> Path:
    """The demo atlas (a SOMA Experiment) of part 2."""
    from chunkatlas.ingest.demo import DemoSpec, write_demo_atlas

    atlas = data / f"atlas-{plan.atlas_cells}-{plan.atlas_genes}.soma"
    if not atlas.exists():
        start = time.perf_counter()
        write_demo_atlas(
            str(atlas), DemoSpec(n_cells=plan.atlas_cells, n_genes=plan.atlas_genes, seed=0)
        )
        print(
            f"  demo atlas {plan.atlas_cells:,} x {plan.atlas_genes:,}: "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    return atlas


# ----------------------------------------------------------------------------- report


def print_run(label: str, rep: int, run, *, pss: bool = False) -> None:
    """One line of progress per measured run."""
    memory = f"peak RSS {run.peak_rss_mb:5.0f} MB"
    if pss:
        memory += f", PSS {run.peak_pss_mb:5.0f} MB"
    print(
        f"  {label} run {rep + 1}: {run.seconds:6.1f} s "
        f"(CPU {run.cpu_seconds:6.1f} s, load {os.getloadavg()[0]:.1f}), {memory}",
        flush=True,
    )


def summarise(runs: list[Run]) -> dict:
    ok = [r for r in runs if r.returncode == 0]
    if not ok:
        return {"runs": len(runs), "failed": len(runs)}
    return {
        "runs": len(ok),
        "seconds_median": statistics.median(r.seconds for r in ok),
        "seconds_min": min(r.seconds for r in ok),
        "seconds_all": [r.seconds for r in ok],
        "cpu_seconds_median": statistics.median(r.cpu_seconds for r in ok),
        "cpu_seconds_all": [r.cpu_seconds for r in ok],
        "peak_rss_mb": statistics.median(r.peak_rss_mb for r in ok),
        "peak_pss_mb": statistics.median(r.peak_pss_mb for r in ok),
        "analysis_seconds_all": [r.detail.get("analysis_seconds") for r in ok],
        "steps": min(ok, key=lambda r: r.seconds).detail.get("steps", {}),
    }


def print_table(title: str, rows: dict[str, dict], base: str) -> None:
    print(f"\n{title}")
    print(
        f"{'':12s} {'runs':>4s} {'median s':>9s} {'min s':>7s} {'CPU s':>7s} "
        f"{'peak RSS MB':>12s} {'peak PSS MB':>12s} {'time/' + base:>12s} "
        f"{'CPU/' + base:>12s}"
    )
    ref = rows.get(base, {}).get("seconds_median")
    ref_cpu = rows.get(base, {}).get("cpu_seconds_median")
    for name, row in rows.items():
        if "seconds_median" not in row:
            print(f"{name:12s} failed")
            continue
        ratio = f"{row['seconds_median'] / ref:.2f}x" if ref else "-"
        cpu_ratio = f"{row['cpu_seconds_median'] / ref_cpu:.2f}x" if ref_cpu else "-"
        print(
            f"{name:12s} {row['runs']:4d} {row['seconds_median']:9.1f} {row['seconds_min']:7.1f} "
            f"{row['cpu_seconds_median']:7.1f} {row['peak_rss_mb']:12.0f} "
            f"{row['peak_pss_mb']:12.0f} {ratio:>12s} {cpu_ratio:>12s}"
        )


def machine() -> dict:
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in out.splitlines()
                if line.startswith("Model name")
            ),
            "",
        )
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "model": model, "python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: under 3 minutes")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each engine")
    parser.add_argument("--data", default=str(HERE / "data"), help="where stores are cached")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--skip-e2e", action="store_true", help="only part 1")
    parser.add_argument("--only", default=None, help="scales to run, e.g. 70k,500k")
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"engines to run, of {', '.join((*ENGINES, *VARIANTS))}",
    )
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return
    plan = QUICK if args.quick else FULL
    if args.only:
        plan = replace(plan, scales=tuple(s for s in plan.scales if s.name in args.only.split(",")))
    chosen = set(args.engines.split(","))
    plan = replace(
        plan,
        scales=tuple(
            replace(s, engines=tuple(e for e in (*s.engines, *VARIANTS) if e in chosen))
            for s in plan.scales
        ),
    )
    repeats = args.repeats or plan.repeats
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    scratch = data / "scratch"
    report: dict = {"machine": machine(), "quick": args.quick, "repeats": repeats, "scales": {}}
    print(f"machine: {report['machine']}", flush=True)
    t0 = time.perf_counter()
    print("making data ...", flush=True)
    stores = make_stores(plan, data)
    atlas = None if args.skip_e2e else make_atlas(plan, data)

    if any(ON_RUN_CLUSTER in scale.engines for scale in plan.scales):
        from chunkatlas.analysis import close_run, open_run

        open_run(data / "clusters")  # this process owns the cluster its children share
    for scale in plan.scales:
        slowest = scale is plan.scales[-1]
        engines = [e for e in scale.engines if e != "memory" or fits_in_memory(stores[scale.name])]
        runs: dict[str, list[Run]] = {e: [] for e in engines}
        for rep in range(repeats):
            for engine in engines:
                if slowest and not engine.startswith("fused") and rep >= plan.slow_repeats:
                    continue
                argv = child(
                    "engine",
                    engine,
                    str(stores[scale.name]),
                    str(scratch / "out.zarr"),
                    str(scale.rows),
                    str(scale.n_top_genes),
                )
                warm_up = engine == ON_RUN_CLUSTER and rep == 0  # as the run's first job
                for _ in range(2 if warm_up else 1):
                    shutil.rmtree(scratch, ignore_errors=True)
                    scratch.mkdir()
                    owner = os.getpid() if engine == ON_RUN_CLUSTER else None
                    run = measure(engine, argv, cluster_owner=owner)
                runs[engine].append(run)
                print_run(f"{scale.name} {engine:7s}", rep, run, pss=True)
        rows = {engine: summarise(r) for engine, r in runs.items()}
        report["scales"][scale.name] = {
            "n_cells": scale.n_cells,
            "n_genes": scale.n_genes,
            "rows": scale.rows,
            "n_top_genes": scale.n_top_genes,
            "engines": rows,
        }
        print_table(
            f"{scale.name}: {scale.n_cells:,} cells x {scale.n_genes:,} genes, "
            f"{scale.rows:,} cells per task",
            rows,
            "fused",
        )
        for engine, row in rows.items():
            if row.get("steps"):
                print(
                    f"  {engine}, fastest run: "
                    + ", ".join(f"{k} {v:.1f} s" for k, v in row["steps"].items())
                )

    first, last = (
        report["scales"][s.name]["engines"].get("fused", {})
        for s in (plan.scales[0], plan.scales[-1])
    )
    if len(plan.scales) > 1 and "peak_rss_mb" in first and "peak_rss_mb" in last:
        report["fused_memory_growth"] = {
            "rss": round(last["peak_rss_mb"] / first["peak_rss_mb"], 2),
            "pss": round(last["peak_pss_mb"] / first["peak_pss_mb"], 2),
        }
        print(
            f"\nfused peak memory {plan.scales[-1].name} / {plan.scales[0].name}: "
            f"RSS {report['fused_memory_growth']['rss']}x, "
            f"PSS {report['fused_memory_growth']['pss']}x"
        )

    if atlas is not None:
        runs = {p: [] for p in E2E_PATHS}
        for rep in range(repeats):
            for path in E2E_PATHS:
                shutil.rmtree(scratch, ignore_errors=True)
                scratch.mkdir()
                run = measure(
                    path,
                    child(
                        "e2e",
                        path,
                        str(atlas),
                        str(scratch),
                        str(plan.e2e_rows),
                        str(plan.e2e_top_genes),
                    ),
                )
                runs[path].append(run)
                print_run(f"e2e {path:10s}", rep, run)
        rows = {p: summarise(r) for p, r in runs.items()}
        report["e2e"] = {
            "atlas_cells": plan.atlas_cells,
            "atlas_genes": plan.atlas_genes,
            "rows": plan.e2e_rows,
            "paths": rows,
        }
        print_table(
            f"end to end from SOMA (tissue lung of a {plan.atlas_cells:,} x "
            f"{plan.atlas_genes:,} demo atlas)",
            rows,
            "chunkatlas",
        )
    if any(ON_RUN_CLUSTER in scale.engines for scale in plan.scales):
        close_run()
    shutil.rmtree(scratch, ignore_errors=True)
    report["total_seconds"] = round(time.perf_counter() - t0)
    print(f"\ntotal {report['total_seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
