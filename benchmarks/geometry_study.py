"""Store geometry at a million cells: what each layout costs to write, to serve and to decode.

    python -m benchmarks.geometry_study [--quick] [--work DIR] [--out DIR] [--resume]
                                        [--grid NAMES] [--writers NAMES] [--skip STEPS]
                                        [--pca-cells N] [--jobs 2]

Run from the repository root.  Steps (each measured step is a subprocess of its own, two steps
at a time on the machine's two cores; at most one holds all of X in memory, at most one spills):

1. **Source** (cached in --work): ``synthetic-census-geometry-1000000-20000.zarr``, 1,000,000
   cells x 20,000 genes drawn with ``benchmarks/synth.py`` from a pool of 20,000 simulated cells,
   thinned to ~1,030 stored values per cell (depth 0.6-1.0), cell-major CSR with obs ``raw_sum``
   and ``nnz``.  The 2,000,000-cell source is that store plus a million more cells drawn the same
   way (its first half is the 1M source's chunk files, hard-linked): every cell distinct.
2. **The writers at 1M and 2M cells** (``--writers``; by default the cell-major and gene-major
   stores of the grid): ``rechunk_store`` in a subprocess: wall and CPU seconds, the process's
   peak RSS (``VmHWM``), the sweeps it makes over the source's ``X/data`` and ``X/indices``
   (passes, from the order of its chunk reads) and the bytes it reads from them over their
   stored bytes (``read_x_*``), and the peak size of the gene-major writer's spill folder
   (``TMPDIR``).  The 2M stores are removed once measured.
3. **The grid at 1M cells** (``--grid``): each store written, consolidated with its manifest
   beside it; objects and bytes from the manifest.
4. **Remote reads**: per store, ``measure_backends`` over HTTP and S3 (aiohttp, moto) behind the
   emulated object-store network (30 ms, 160 Mbit/s per response), one cold read per pattern;
   ``all_x`` over that network only for the stores of ``Plan.emulated_all_x``, for the others
   counted over HTTP on bare loopback (``network`` column: ``object_store`` or ``loopback``).
5. **Readers other than chunkatlas**, cell-major store in zstd and in packed, side by side
   (alternating): plain zarr reading X's three arrays whole, anndata's ``sparse_dataset(...)
   .to_memory()``, and stock scanpy's normalize_total + log1p + HVG (seurat) + PCA on Dask
   (2 workers; ``--pca-cells`` for a subset).

Writes ``stores.tsv``, ``patterns.tsv``, ``writer_memory.tsv``, ``readers.tsv`` and
``summary.md`` to --out; each step's result is kept in WORK/geometry-study-CELLS/steps, and
``--resume`` reuses them (without it that folder is made again).  ``--quick`` runs the same on
20,000 / 40,000 cells in a few minutes.  Timings depend on what else the machine runs: compare
ratios measured in one run.  Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GENES = 20_000
DEPTH = (0.6, 1.0)  # per-cell thinning: ~1,030 stored values per cell from the 20,000-cell pool
SOURCE_CHUNK = 10_000  # cells per block as synth writes the source
PATTERN_ORDER = ("open", "one_gene", "fifty_genes", "cell_block", "all_x")
MEMORY_MB = 8192  # the Dask cluster of the scanpy reader: 2 workers sharing this


@dataclass(frozen=True)
class Geometry:
    orientation: str  # "cells" (CSR) or "genes" (CSC)
    size: int  # cells or genes per chunk
    shard: int  # chunks per shard; 1 is unsharded
    codec: str

    @property
    def name(self) -> str:
        return f"{self.orientation}-{self.size}-shard-{self.shard}-{self.codec}"

    @classmethod
    def parse(cls, name: str) -> Geometry:
        orientation, size, _, shard, codec = name.split("-")
        return cls(orientation, int(size), int(shard), codec)


CELL_PACKED = Geometry("cells", 10_000, 1, "packed")
CELL_ZSTD = Geometry("cells", 10_000, 1, "zstd")
GENE_PACKED = Geometry("genes", 200, 1, "packed")


@dataclass(frozen=True)
class Plan:
    cells: int  # the grid's cells
    big_cells: int  # the writers' second size
    pool_cells: int
    grid: tuple[Geometry, ...]
    writers: tuple[Geometry, ...] = (CELL_PACKED, GENE_PACKED)  # measured at both sizes
    emulated_all_x: tuple[str, ...] = (CELL_PACKED.name, GENE_PACKED.name)
    readers: tuple[Geometry, Geometry] = (CELL_ZSTD, CELL_PACKED)  # side by side
    reader_runs: int = 2  # of plain zarr and anndata per codec (scanpy: 1)
    pca_cells: int | None = None  # cells the scanpy reader analyses (None: all)
    rows: int = 10_000  # cells per Dask task of the scanpy reader

    @property
    def label(self) -> str:
        return f"{self.cells:,} cells"


# Both orientations, unsharded and sharded, both codecs, in what fits ~45 minutes of a 2-core
# machine at a million cells (each store takes 3-10 minutes to write and 3-5 to measure there);
# ``--grid`` runs others, e.g. cells-1000-shard-16-packed.
GRID = (CELL_PACKED, CELL_ZSTD, GENE_PACKED, Geometry("genes", 20, 16, "packed"))
FULL = Plan(cells=1_000_000, big_cells=2_000_000, pool_cells=20_000, grid=GRID)
QUICK = Plan(cells=20_000, big_cells=40_000, pool_cells=2_000, grid=GRID)

STEPS = ("writers", "remote", "readers")  # what --skip may leave out


# ----------------------------------------------------------------------------- sources


def source_path(work: Path, cells: int) -> Path:
    return work / f"synthetic-census-geometry-{cells}-{GENES}.zarr"


def make_source(
    path: Path,
    plan: Plan,
    genes: int = GENES,
    depth: tuple[float, float] = DEPTH,
) -> dict:
    """The grid's source: synth's store of ``plan.cells`` cells x ``genes`` genes, drawn from a
    pool of ``plan.pool_cells`` cells thinned at a per-cell ``depth`` (cached)."""
    from benchmarks.synth import make_pool, write_store

    start = time.perf_counter()
    pool = make_pool(plan.pool_cells, genes)
    partial = path.with_name(path.name + ".partial")  # an interrupted write is not cached
    write_store(partial, pool, plan.cells, chunk=SOURCE_CHUNK, seed=1, depth=depth)
    partial.rename(path)
    return {"seconds": round(time.perf_counter() - start, 1), **describe_source(path)}


def describe_source(path: Path) -> dict:
    import zarr

    x = zarr.open_group(path, mode="r")["X"]
    n_obs = int(x.attrs["shape"][0])
    nnz = int(x["data"].shape[0])
    return {
        "cells": n_obs,
        "nnz": nnz,
        "values_per_cell": round(nnz / n_obs, 1),
        "mb": round(tree_bytes(path) / 1e6, 1),
    }


def extend_source(small: Path, big: Path, plan: Plan) -> dict:
    """The writers' second source: ``small`` followed by more cells drawn the same way (another
    seed).  ``small``'s whole chunks of X's data and indices are hard-linked (zarr replaces a
    file it rewrites, never writes into it), everything else copied; the new cells are appended
    block by block with anndata, as synth writes, so memory stays flat."""
    import zarr
    from anndata.io import read_elem, sparse_dataset, write_elem

    from benchmarks.synth import draw_block, make_pool

    start = time.perf_counter()
    partial = big.with_name(big.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    source = zarr.open_group(small, mode="r")
    full_chunks = {
        name: source["X"][name].shape[0] // source["X"][name].chunks[0]
        for name in ("data", "indices")
    }

    def copy(src: str, dst: str) -> None:
        relative = Path(src).relative_to(small).parts
        linked = (
            len(relative) == 4
            and relative[0] == "X"
            and relative[1] in full_chunks
            and relative[2] == "c"
            and relative[3].isdigit()
            and int(relative[3]) < full_chunks[relative[1]]
        )
        if linked:
            try:
                os.link(src, dst)
                return
            except OSError:  # another file system: copy
                pass
        shutil.copy2(src, dst)

    shutil.copytree(small, partial, copy_function=copy)
    root = zarr.open_group(partial, mode="r+")
    matrix = sparse_dataset(root["X"])
    pool = make_pool(plan.pool_cells, GENES)
    rng = np.random.default_rng(2)  # synth's store used seed 1
    more = plan.big_cells - plan.cells
    types, sums, nnzs = [], [], []
    for lo in range(0, more, SOURCE_CHUNK):
        block, cell_types = draw_block(pool, rng, min(SOURCE_CHUNK, more - lo), DEPTH)
        matrix.append(block)
        types.append(cell_types)
        sums.append(np.asarray(block.sum(axis=1, dtype=np.float64)).ravel())
        nnzs.append(np.diff(block.indptr).astype(np.int64))
    obs = read_elem(root["obs"])
    added = pd.DataFrame(
        {
            "cell_type": np.concatenate(types),
            "raw_sum": np.concatenate(sums),
            "nnz": np.concatenate(nnzs),
        },
        index=pd.Index([f"cell{i}" for i in range(plan.cells, plan.big_cells)]),
    )
    obs = pd.concat([obs.astype({"cell_type": object}), added])
    obs["cell_type"] = pd.Categorical(obs["cell_type"])
    del root["obs"]
    write_elem(root, "obs", obs)
    partial.rename(big)
    return {"seconds": round(time.perf_counter() - start, 1), **describe_source(big)}


def tree_bytes(path: Path) -> int:
    total = 0
    for entry in os.scandir(path):
        try:
            if entry.is_dir(follow_symlinks=False):
                total += tree_bytes(Path(entry.path))
            else:
                total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:  # removed while we looked (the spill folder)
            pass
    return total


# ----------------------------------------------------------------------------- child steps


def child_argv(kind: str, spec: dict) -> list[str]:
    return [sys.executable, "-m", "benchmarks.geometry_study", "--child", kind, json.dumps(spec)]


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (VmHWM: getrusage's maxrss would include the
    parent's resident memory at the fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


def cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class SourceReads:
    """What this process reads from one local zarr store's chunk files, by array ("X/data"):
    bytes, and the chunks' numbers in the order they were read."""

    bytes: dict[str, int] = field(default_factory=dict)
    order: dict[str, list[int]] = field(default_factory=dict)

    def passes(self, array: str, n_chunks: int) -> int:
        """Sweeps over the array: a sweep starts with a read of its first chunk after its last
        chunk was read (neighbouring blocks reading one chunk each are one sweep)."""
        count, finished = 0, True
        for index in self.order.get(array, []):
            if index == 0 and finished:
                count, finished = count + 1, False
            if index == n_chunks - 1 and n_chunks > 1:
                finished = True
        return count


def count_local_reads(root: Path) -> SourceReads:
    """Count the reads of the local zarr store at ``root`` from here on in this process
    (zarr's LocalStore reads, wrapped)."""
    from zarr.storage import LocalStore

    counted = SourceReads()
    lock = threading.Lock()
    root = root.resolve()

    def add(store, key: str, value) -> None:
        if value is None or Path(store.root).resolve() != root or "/c/" not in key:
            return
        array, chunk = key.split("/c/")
        with lock:
            counted.bytes[array] = counted.bytes.get(array, 0) + len(value)
            counted.order.setdefault(array, []).append(int(chunk.split("/")[0]))

    get, get_sync, get_partial = LocalStore.get, LocalStore.get_sync, LocalStore.get_partial_values

    async def counted_get(self, key, prototype=None, byte_range=None):
        value = await get(self, key, prototype, byte_range)
        add(self, key, value)
        return value

    def counted_get_sync(self, key, *, prototype=None, byte_range=None):
        value = get_sync(self, key, prototype=prototype, byte_range=byte_range)
        add(self, key, value)
        return value

    async def counted_partial(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        values = await get_partial(self, prototype, key_ranges)
        for (key, _), value in zip(key_ranges, values, strict=True):
            add(self, key, value)
        return values

    LocalStore.get, LocalStore.get_sync = counted_get, counted_get_sync
    LocalStore.get_partial_values = counted_partial
    return counted


def stored_chunk_bytes(store: Path, array: str) -> int:
    folder = store / array / "c"
    return tree_bytes(folder) if folder.exists() else 0


def child_write(spec: dict) -> dict:
    """Re-write the source in one geometry (the spill folder is TMPDIR, set by the parent),
    then consolidate it with its manifest."""
    import zarr

    from chunkatlas.rewrite import consolidate_store, rechunk_store

    source, dest = Path(spec["source"]), Path(spec["dest"])
    g = Geometry.parse(spec["geometry"])
    reads = count_local_reads(source)
    cpu, start = cpu_seconds(), time.perf_counter()
    rechunk_store(source, dest, g.size, shard=g.shard, codec=g.codec, orientation=g.orientation)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    peak = peak_rss_mb()  # the rewrite's: consolidating reads metadata only
    start = time.perf_counter()
    manifest = consolidate_store(dest, manifest_path(dest))
    figures = {}
    for name in ("data", "indices"):
        array = zarr.open_array(source / "X" / name, mode="r")
        n_chunks = -(-array.shape[0] // array.chunks[0])
        figures[f"passes_{name}"] = reads.passes(f"X/{name}", n_chunks)
        stored = stored_chunk_bytes(source, f"X/{name}")
        figures[f"read_x_{name}"] = round(reads.bytes.get(f"X/{name}", 0) / stored, 2)
    return {
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "peak_rss_mb": peak,
        **figures,
        "consolidate_seconds": round(time.perf_counter() - start, 2),
        **manifest_figures(manifest),
    }


def manifest_path(store: Path) -> Path:
    return store.with_name(store.name.removesuffix(".zarr") + ".manifest.json")


def manifest_figures(manifest: dict) -> dict:
    x = [a for a in manifest["arrays"] if a["path"].split("/")[0] == "X"]
    return {
        "objects": manifest["objects"],
        "store_mb": round(manifest["stored_bytes"] / 1e6, 1),
        "x_objects": sum(a["n_objects"] for a in x),
        "x_mb": round(sum(a["stored_bytes"] for a in x) / 1e6, 1),
        "nnz": manifest["x_nnz"],
    }


def child_measure(spec: dict) -> dict:
    """measure_backends on one store, ``spec['repeats']`` cold reads per pattern (default 1);
    the table goes to ``spec['table']``."""
    from chunkatlas.study import OBJECT_STORE, Network, measure_backends

    network = OBJECT_STORE if spec["network"] == "object_store" else Network()
    start = time.perf_counter()
    table = measure_backends(
        spec["store"],
        backends=tuple(spec["backends"]),
        server="aiohttp",
        network=network,
        repeats=spec.get("repeats", 1),
        patterns=tuple(spec["patterns"]),
    )
    table.to_csv(spec["table"], sep="\t", index=False)
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": peak_rss_mb()}


def child_read(spec: dict) -> dict:
    """One reader other than chunkatlas over a local store."""
    store, reader = spec["store"], spec["reader"]
    if reader == "zarr":
        import zarr

        start = time.perf_counter()
        x = zarr.open_group(store, mode="r")["X"]
        arrays = {name: x[name][:] for name in ("indptr", "indices", "data")}
        values = len(arrays["data"])
    elif reader == "anndata":
        import zarr
        from anndata.io import sparse_dataset

        start = time.perf_counter()
        matrix = sparse_dataset(zarr.open_group(store, mode="r")["X"]).to_memory()
        values = matrix.nnz
    else:  # stock scanpy on Dask, as chunkatlas's scanpy engine runs it
        from chunkatlas.analysis import AnalysisParams, ClusterSettings, dask_client, hvg_pca
        from chunkatlas.store import read_dask_backed

        with dask_client(ClusterSettings(workers=2, memory_mb=MEMORY_MB)):
            adata = read_dask_backed(store, spec["rows"])
            if spec["cells"] < adata.n_obs:
                adata = adata[: spec["cells"]].copy()
            start = time.perf_counter()
            result = hvg_pca(adata, AnalysisParams(n_top_genes=2000, engine="scanpy"))
            values = int(result.var["highly_variable"].sum())
    return {
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mb": peak_rss_mb(),
        "values": int(values),
    }


def child_source(spec: dict) -> dict:
    plan = replace(FULL, cells=spec["cells"], big_cells=spec["big_cells"], pool_cells=spec["pool"])
    small, big = Path(spec["small"]), Path(spec["big"])
    if spec["extend"]:
        return extend_source(small, big, plan)
    depth = tuple(spec.get("depth", DEPTH))
    return make_source(small, plan, genes=spec.get("genes", GENES), depth=depth)


CHILDREN: dict[str, Callable[[dict], dict]] = {
    "source": child_source,
    "write": child_write,
    "measure": child_measure,
    "read": child_read,
}


def child_main(kind: str, spec: str) -> None:
    import warnings

    warnings.filterwarnings("ignore")  # the parent keeps only the result line
    result = CHILDREN[kind](json.loads(spec))
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- running


class Log:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.lock = threading.Lock()

    def __call__(self, message: str) -> None:
        load = os.getloadavg()[0]
        with self.lock:
            print(f"[{self.elapsed():7.1f} s, load {load:4.1f}] {message}", flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def run_child(kind: str, spec: dict, *, env: dict | None = None, watch: Path | None = None):
    """Run a child step; returns its result (with ``wall`` seconds, and the peak size of the
    folder ``watch`` in MB when given)."""
    peak = [0]
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.5):
            if watch is not None and watch.exists():
                peak[0] = max(peak[0], tree_bytes(watch))

    start = time.perf_counter()
    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        proc = subprocess.run(
            child_argv(kind, spec),
            cwd=REPO,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
        )
    finally:
        done.set()
        watcher.join()
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{kind} step failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result["wall"] = round(time.perf_counter() - start, 1)
    if watch is not None:
        result["spill_peak_mb"] = round(peak[0] / 1e6, 1)
    return result


@dataclass
class Job:
    name: str
    run: Callable[[], dict]
    after: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()  # "memory": all of X in memory; "spill": the gene-major spill


@dataclass
class Scheduler:
    """Jobs in order of priority, ``slots`` at a time, each when the jobs it comes after are done
    and no running job holds a resource it needs.  Results are kept in ``steps`` (JSON per job)
    so that ``--resume`` can skip what an earlier run finished."""

    steps: Path
    log: Log
    slots: int = 2
    resume: bool = False
    results: dict[str, dict] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)

    def run(self, jobs: list[Job]) -> None:
        self.steps.mkdir(parents=True, exist_ok=True)
        pending = list(jobs)
        running: dict[str, Job] = {}
        cond = threading.Condition()

        def ready(job: Job) -> bool:
            if any(name in self.failed for name in job.after):
                return True  # will be skipped
            if not all(name in self.results for name in job.after):
                return False
            held = {need for other in running.values() for need in other.needs}
            return not held & set(job.needs)

        def work() -> None:
            while True:
                with cond:
                    while True:
                        if not pending:
                            return
                        job = next((j for j in pending if ready(j)), None)
                        if job is not None:
                            break
                        cond.wait()
                    pending.remove(job)
                    running[job.name] = job
                self.execute(job)
                with cond:
                    del running[job.name]
                    cond.notify_all()

        threads = [threading.Thread(target=work) for _ in range(self.slots)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def execute(self, job: Job) -> None:
        saved = self.steps / f"{job.name}.json"
        broken = [name for name in job.after if name in self.failed]
        if broken:
            self.failed[job.name] = f"skipped: {', '.join(broken)} failed"
            self.log(f"{job.name}: skipped ({', '.join(broken)} failed)")
            return
        if self.resume and saved.exists():
            self.results[job.name] = json.loads(saved.read_text())
            self.resumed.append(job.name)
            self.log(f"{job.name}: done in an earlier run (--resume)")
            return
        self.log(f"{job.name}: started")
        start = time.perf_counter()
        try:
            result = job.run()
        except Exception as err:  # noqa: BLE001 - one step's failure is reported, the rest runs
            self.failed[job.name] = str(err)
            self.log(f"{job.name}: FAILED after {time.perf_counter() - start:.0f} s: {err}")
            return
        result["step_seconds"] = round(time.perf_counter() - start, 1)
        result["step_ended"] = time.time()
        saved.write_text(json.dumps(result, indent=1) + "\n")
        self.results[job.name] = result
        self.log(f"{job.name}: {time.perf_counter() - start:.0f} s; {brief(result)}")


def brief(result: dict) -> str:
    keys = (
        "seconds",
        "cpu_seconds",
        "peak_rss_mb",
        "passes_data",
        "spill_peak_mb",
        "objects",
        "store_mb",
        "values_per_cell",
        "mb",
    )
    return ", ".join(f"{k} {result[k]}" for k in keys if k in result)


# ----------------------------------------------------------------------------- the study


def measured_patterns(g: Geometry, plan: Plan) -> tuple[str, ...]:
    """The patterns read over the emulated network: all but ``all_x``, which only the stores of
    ``plan.emulated_all_x`` read there (the others count it on loopback)."""
    every = ("open", "one_gene", "fifty_genes", "cell_block")
    return (*every, "all_x") if g.name in plan.emulated_all_x else every


def build_jobs(plan: Plan, work: Path, run_dir: Path, skip: set[str], log: Log) -> list[Job]:
    small, big = source_path(work, plan.cells), source_path(work, plan.big_cells)
    grid_dir, tables = run_dir / "stores", run_dir / "tables"
    spill_root = run_dir / "spill"

    def store_of(g: Geometry, cells: int) -> Path:
        return grid_dir / f"{cells}" / g.name / "store.zarr"

    def write(g: Geometry, source: Path, cells: int, keep: bool) -> Callable[[], dict]:
        def run() -> dict:
            dest = store_of(g, cells)
            shutil.rmtree(dest.parent, ignore_errors=True)
            dest.parent.mkdir(parents=True)
            spill = spill_root / f"{cells}-{g.name}"
            shutil.rmtree(spill, ignore_errors=True)
            spill.mkdir(parents=True)
            spec = {"source": str(source), "dest": str(dest), "geometry": g.name}
            try:
                result = run_child("write", spec, env={"TMPDIR": str(spill)}, watch=spill)
            finally:
                shutil.rmtree(spill, ignore_errors=True)
            if not keep:  # the 2M stores and the writers' others: measured, then removed
                shutil.rmtree(dest.parent)
            return {"geometry": g.name, "cells": cells, **result}

        return run

    def measure(g: Geometry, network: str, patterns: tuple[str, ...], backends) -> Callable:
        def run() -> dict:
            tables.mkdir(parents=True, exist_ok=True)
            table = tables / f"{g.name}-{network}.tsv"
            spec = {
                "store": str(store_of(g, plan.cells)),
                "network": network,
                "backends": list(backends),
                "patterns": list(patterns),
                "table": str(table),
            }
            result = run_child("measure", spec)
            rows = pd.read_csv(table, sep="\t")
            return {"table": str(table), "rows": len(rows), **result}

        return run

    def readers() -> dict:
        runs = []
        stores = {g.codec: store_of(g, plan.cells) for g in plan.readers}
        order = [g.codec for g in plan.readers]
        for reader in ("zarr", "anndata", "scanpy"):
            times = plan.reader_runs if reader != "scanpy" else 1
            for number in range(times):
                # alternate: zstd, packed, then packed, zstd (the slower half of a drift shared)
                codecs = order if number % 2 == 0 else order[::-1]
                for codec in codecs:
                    cells = min(plan.pca_cells or plan.cells, plan.cells)
                    spec = {"store": str(stores[codec]), "reader": reader, "rows": plan.rows}
                    spec["cells"] = cells if reader == "scanpy" else plan.cells
                    result = run_child("read", spec)
                    log(
                        f"reader {reader} {codec} run {number + 1}: {result['seconds']} s, "
                        f"peak RSS {result['peak_rss_mb']:,.0f} MB"
                    )
                    runs.append(
                        {"reader": reader, "codec": codec, "cells": spec["cells"], **result}
                    )
        return {"runs": runs}

    def source(extend: bool) -> Callable[[], dict]:
        def run() -> dict:
            path = big if extend else small
            if path.exists():
                return {"cached": True, **describe_source(path)}
            spec = {"small": str(small), "big": str(big), "extend": extend}
            sizes = {"cells": plan.cells, "big_cells": plan.big_cells, "pool": plan.pool_cells}
            return run_child("source", {**spec, **sizes})

        return run

    jobs = [Job("source", source(False))]
    # the writers' geometries first (their 1M stores are measured at 2M too), then the grid's
    writers = [] if "writers" in skip else list(plan.writers)
    ordered = [g for g in writers if g in plan.grid] + [g for g in plan.grid if g not in writers]
    only_writers = [g for g in writers if g not in plan.grid]  # written, not served
    if "writers" not in skip:
        jobs.append(
            Job(
                "source-2x",
                source(True),
                after=("source",),
            )
        )
    for g in [*ordered, *only_writers]:
        spill = ("spill",) if g.orientation == "genes" else ()
        keep = g in plan.grid
        jobs.append(Job(f"write {g.name}", write(g, small, plan.cells, keep), ("source",), spill))
    for g in ordered:
        if "remote" in skip:
            break
        after = (f"write {g.name}",)
        patterns = measured_patterns(g, plan)
        jobs.append(
            Job(
                f"remote {g.name}",
                measure(g, "object_store", patterns, ("http", "s3")),
                after,
                ("memory",),
            )
        )
        if g.name not in plan.emulated_all_x:
            jobs.append(
                Job(
                    f"count {g.name}",
                    measure(g, "loopback", ("all_x",), ("http",)),
                    after,
                    ("memory",),
                )
            )
    if "writers" not in skip:
        for g in writers:
            spill = ("spill",) if g.orientation == "genes" else ()
            jobs.append(
                Job(
                    f"write {g.name} at {plan.big_cells:,}",
                    write(g, big, plan.big_cells, False),
                    ("source-2x",),
                    spill,
                )
            )
    if "readers" not in skip:
        after = tuple(f"write {g.name}" for g in plan.readers)
        jobs.append(Job("readers", readers, after, ("memory",)))
    return jobs


# ----------------------------------------------------------------------------- tables


def store_table(plan: Plan, results: dict) -> pd.DataFrame:
    rows = []
    for g in plan.grid:
        written = results.get(f"write {g.name}")
        if not written:
            continue
        remote = results.get(f"remote {g.name}")
        decode = None
        if remote:
            decode = float(pd.read_csv(remote["table"], sep="\t")["decode_seconds"].iloc[0])
        rows.append(
            {
                "store": g.name,
                "orientation": g.orientation,
                "chunk": g.size,
                "unit": g.orientation,
                "shard": g.shard,
                "codec": g.codec,
                "cells": plan.cells,
                "genes": GENES,
                "nnz": written["nnz"],
                "write_seconds": written["seconds"],
                "write_cpu_seconds": written["cpu_seconds"],
                "write_peak_rss_mb": written["peak_rss_mb"],
                "passes_data": written["passes_data"],
                "passes_indices": written["passes_indices"],
                "read_x_data": written["read_x_data"],
                "read_x_indices": written["read_x_indices"],
                "spill_peak_mb": written["spill_peak_mb"],
                "consolidate_seconds": written["consolidate_seconds"],
                "objects": written["objects"],
                "store_mb": written["store_mb"],
                "x_objects": written["x_objects"],
                "x_mb": written["x_mb"],
                "decode_seconds": decode,
            }
        )
    return pd.DataFrame(rows)


def pattern_table(plan: Plan, results: dict) -> pd.DataFrame:
    frames = []
    for g in plan.grid:
        for step, network in (("remote", "object_store"), ("count", "loopback")):
            done = results.get(f"{step} {g.name}")
            if not done:
                continue
            table = pd.read_csv(done["table"], sep="\t")
            table.insert(0, "store", g.name)
            table.insert(1, "network", network)
            table["reader_peak_rss_mb"] = done["peak_rss_mb"]
            frames.append(table)
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    table["MB"] = (table["bytes"] / 1e6).round(2)
    table["pattern"] = pd.Categorical(table["pattern"], PATTERN_ORDER, ordered=True)
    return table.sort_values(["pattern", "backend", "network", "seconds"]).reset_index(drop=True)


def writer_table(plan: Plan, results: dict) -> pd.DataFrame:
    rows = []
    for g in plan.writers:
        kind = "gene-major (CSC)" if g.orientation == "genes" else "cell-major (CSR)"
        for cells, step in (
            (plan.cells, f"write {g.name}"),
            (plan.big_cells, f"write {g.name} at {plan.big_cells:,}"),
        ):
            done = results.get(step)
            if not done:
                continue
            rows.append(
                {
                    "writer": kind,
                    "geometry": g.name,
                    "cells": cells,
                    "nnz": done["nnz"],
                    "seconds": done["seconds"],
                    "cpu_seconds": done["cpu_seconds"],
                    "peak_rss_mb": done["peak_rss_mb"],
                    "passes_data": done["passes_data"],
                    "passes_indices": done["passes_indices"],
                    "read_x_data": done["read_x_data"],
                    "read_x_indices": done["read_x_indices"],
                    "spill_peak_mb": done["spill_peak_mb"],
                    "store_mb": done["store_mb"],
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    for column in ("seconds", "cpu_seconds", "peak_rss_mb"):
        base = table.groupby("geometry")[column].transform("first")
        table[f"{column}_vs_first"] = (table[column] / base).round(2)
    return table


def reader_table(results: dict) -> pd.DataFrame:
    done = results.get("readers")
    return pd.DataFrame(done["runs"]) if done else pd.DataFrame()


# ----------------------------------------------------------------------------- summary


def md(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=",.6g") if not table.empty else "(none)"


def best_layouts(patterns: pd.DataFrame, stores: pd.DataFrame) -> pd.DataFrame:
    """Per pattern and backend, the fastest store over the emulated network (and the fewest
    bytes where a pattern was counted on loopback only for some stores)."""
    rows = []
    objects = stores.set_index("store")["objects"] if not stores.empty else {}
    for (pattern, backend), group in patterns.groupby(["pattern", "backend"], observed=True):
        emulated = group[group["network"] == "object_store"]
        if emulated.empty:
            continue
        best = emulated.sort_values("seconds").iloc[0]
        slowest = emulated.sort_values("seconds").iloc[-1]
        counted = group[group["store"].isin(set(group["store"]) - set(emulated["store"]))]
        note = ""
        if not counted.empty:
            fewest = group.sort_values(["bytes", "requests"]).iloc[0]
            note = (
                f"emulated on {len(emulated)} of {group['store'].nunique()} stores; fewest bytes "
                f"of all: {fewest['store']} ({fewest['MB']:,.1f} MB, {fewest['requests']} req.)"
            )
        rows.append(
            {
                "pattern": pattern,
                "backend": backend,
                "best layout": best["store"],
                "requests": int(best["requests"]),
                "MB": round(float(best["MB"]), 2),
                "seconds": best["seconds"],
                "objects": int(objects.get(best["store"], 0)) if len(objects) else None,
                "slowest layout (seconds)": f"{slowest['store']} ({slowest['seconds']})",
                "note": note,
            }
        )
    return pd.DataFrame(rows)


def reader_ratios(readers: pd.DataFrame) -> pd.DataFrame:
    if readers.empty:
        return readers
    medians = readers.groupby(["reader", "codec"])[["seconds", "peak_rss_mb"]].median()
    rows = []
    for reader in readers["reader"].unique():
        try:
            zstd, packed = medians.loc[(reader, "zstd")], medians.loc[(reader, "packed")]
        except KeyError:
            continue
        rows.append(
            {
                "reader": reader,
                "cells": int(readers[readers["reader"] == reader]["cells"].iloc[0]),
                "runs per codec": int((readers["reader"] == reader).sum() // 2),
                "zstd s": zstd["seconds"],
                "packed s": packed["seconds"],
                "packed / zstd": round(packed["seconds"] / zstd["seconds"], 2),
                "zstd peak RSS MB": zstd["peak_rss_mb"],
                "packed peak RSS MB": packed["peak_rss_mb"],
            }
        )
    return pd.DataFrame(rows)


def summary(plan: Plan, results: dict, tables: dict[str, pd.DataFrame], info: dict) -> str:
    stores, patterns = tables["stores"], tables["patterns"]
    writers, readers = tables["writer_memory"], tables["readers"]
    lines = [
        f"# Store geometry at {plan.label}",
        "",
        f"`{info['command']}`: {info['total_seconds'] / 60:.1f} min on {info['machine']}; "
        f"load average {info['load_start']:.1f} at the start, {info['load_end']:.1f} at the end "
        "(a shared machine: compare ratios measured side by side, not seconds across runs).",
        f"The steps took {info['step_minutes']:.1f} min in all, {info['slots']} at a time"
        + (
            f"; done by an earlier run (--resume): {', '.join(info['resumed'])}."
            if info["resumed"]
            else "."
        ),
        "",
        f"Source: {info['source']}.",
        "",
        "## Best layout per access pattern and backend",
        "",
        "Emulated object-store network (30 ms to the first byte, 160 Mbit/s per response), one "
        "cold read each.",
        "",
        md(best_layouts(patterns, stores)) if not patterns.empty else "(not measured)",
        "",
        "## Every store and pattern",
        "",
    ]
    if not patterns.empty:
        wide = patterns.assign(cost=patterns.apply(cost_cell, axis=1)).pivot_table(
            index=["pattern", "backend", "network"],
            columns="store",
            values="cost",
            aggfunc="first",
            observed=True,
        )
        lines += [
            "Each cell: requests / MB / seconds.",
            "",
            md(wide.reset_index()),
            "",
        ]
    lines += [
        "## Stores",
        "",
        md(
            stores[
                [
                    "store",
                    "write_seconds",
                    "write_cpu_seconds",
                    "write_peak_rss_mb",
                    "objects",
                    "store_mb",
                    "x_mb",
                    "decode_seconds",
                ]
            ]
        )
        if not stores.empty
        else "(none)",
        "",
        "## The writers at two sizes",
        "",
        md(writers),
        "",
        "## Decoding for readers other than chunkatlas (median seconds)",
        "",
        md(reader_ratios(readers)),
        "",
    ]
    if results.get("failed"):
        lines += ["## Failed steps", ""]
        lines += [f"* {name}: {why.splitlines()[0]}" for name, why in results["failed"].items()]
    return "\n".join(lines) + "\n"


def cost_cell(row) -> str:
    return f"{row['requests']} / {row['MB']:,.1f} / {row['seconds']:.2f}"


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({model}), {ram:.0f} GiB RAM, Python {python}"


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20,000 cells: a few minutes")
    parser.add_argument("--work", default=str(HERE / "data"), help="sources and stores")
    parser.add_argument("--out", default=str(HERE / "results" / "geometry_study"))
    parser.add_argument("--grid", default=None, help="store names, e.g. cells-10000-shard-1-zstd")
    parser.add_argument("--skip", default="", help=f"steps to leave out, of {', '.join(STEPS)}")
    parser.add_argument(
        "--writers",
        default=",".join(g.name for g in FULL.writers),
        help="geometries whose writers are measured at both sizes",
    )
    parser.add_argument("--pca-cells", type=int, default=None, help="cells for scanpy's reader")
    parser.add_argument("--jobs", type=int, default=2, help="steps run at a time")
    parser.add_argument(
        "--resume", action="store_true", help="reuse the steps an earlier run finished"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(*args.child)
        return
    plan = QUICK if args.quick else FULL
    if args.grid:
        plan = replace(plan, grid=tuple(Geometry.parse(n) for n in args.grid.split(",")))
    plan = replace(plan, writers=tuple(Geometry.parse(n) for n in args.writers.split(",")))
    if args.pca_cells:
        plan = replace(plan, pca_cells=args.pca_cells)
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(STEPS):
        sys.exit(f"--skip: unknown steps {', '.join(sorted(skip - set(STEPS)))}")
    work, out = Path(args.work).resolve(), Path(args.out).resolve()
    run_dir = work / f"geometry-study-{plan.cells}"
    if not args.resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    log = Log()
    info = {
        "command": "python -m benchmarks.geometry_study " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "load_start": os.getloadavg()[0],
    }
    log(f"machine: {info['machine']}")
    log(f"grid at {plan.label}: {', '.join(g.name for g in plan.grid)}")
    log(f"work: {run_dir}; out: {out}")
    scheduler = Scheduler(run_dir / "steps", log, slots=args.jobs, resume=args.resume)
    scheduler.run(build_jobs(plan, work, run_dir, skip, log))

    results = {**scheduler.results, "failed": scheduler.failed}
    source = results.get("source")
    info["source"] = (
        f"{source['cells']:,} cells x {GENES:,} genes, {source['values_per_cell']:,} stored "
        f"values per cell ({source['nnz']:,}), {source['mb']:,} MB"
        if source
        else "not made"
    )
    if results.get("source-2x"):
        big = results["source-2x"]
        info["source"] += (
            f"; the writers' second source {big['cells']:,} cells ({big['nnz']:,} values, "
            f"{big['mb']:,} MB): the first plus as many cells more, drawn the same way"
        )
    tables = {
        "stores": store_table(plan, results),
        "patterns": pattern_table(plan, results),
        "writer_memory": writer_table(plan, results),
        "readers": reader_table(results),
    }
    for name, table in tables.items():
        table.to_csv(out / f"{name}.tsv", sep="\t", index=False)
    info["total_seconds"] = log.elapsed()
    info["load_end"] = os.getloadavg()[0]
    info["slots"], info["resumed"] = args.jobs, scheduler.resumed
    info["step_minutes"] = (
        sum(r.get("step_seconds", 0) for r in scheduler.results.values() if isinstance(r, dict))
        / 60
    )
    text = summary(plan, results, tables, info)
    (out / "summary.md").write_text(text)
    print("\n" + text)
    log(f"tables and summary.md in {out}")
    if scheduler.failed:
        sys.exit(f"{len(scheduler.failed)} step(s) failed: {', '.join(scheduler.failed)}")


if __name__ == "__main__":
    main()
