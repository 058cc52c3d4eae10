"""The shipped cost model judged by the layouts it picks, on a tissue it was not fitted on.

    python -m benchmarks.heldout_study [--quick] [--cells N] [--genes N] [--work DIR] [--out DIR]
                                       [--resume] [--repeats N] [--grid NAMES] [--jobs N]

Run from the repository root.  The reference cost model (``chunkatlas.model.load_cost_model()``)
was fitted on the million-cell study: 1,000,000 cells x 20,000 genes, ~1,029 stored values per
cell (``benchmarks/reference_model.py``).  Here it is judged on another tissue shape, with the
machinery of ``benchmarks/geometry_study.py`` (its child steps, scheduler and log):

1. **Source** (cached in --work): 250,000 cells x 40,000 genes drawn with ``benchmarks/synth.py``
   from a pool of 20,000 simulated cells, thinned at a per-cell depth of 0.40-0.73 (~1,600
   stored values per cell: the 40,000-gene pool holds ~2,440 per cell); generation is O(nnz).
   ``--quick``: 20,000 cells x 8,000 genes from a pool of 2,000 (~300 values per cell).
2. **The picks**: what ``chunkatlas advise SOURCE --backend B`` advises per X pattern for the
   default reader (anndata), with the same calls: the source's size (``atlas_of``), the
   reference model with the source's own bytes per value (``source_encodings``), every
   candidate's predictions, each store's objects (``with_store_objects`` with the source's own
   obs and var, ``columns_of``), then ``best_per_pattern``.  Kept in ``picks.tsv``.
3. **The stores**: the grid (at least 8 layouts: both orientations, both codecs, unsharded and
   sharded, chunk sizes 10x apart) and every pick not in it, each written by ``rechunk_store``
   in a subprocess and consolidated with its manifest (``--jobs`` writes at a time).
4. **The reads**: per store, ``measure_backends`` over HTTP and S3 (aiohttp, moto) behind the
   emulated object-store network (``OBJECT_STORE``: 30 ms, 160 Mbit/s per response), every
   pattern including ``all_x``, ``--repeats`` cold reads each (default 1), then the store's
   local decode pass of X.  One store at a time, nothing else running: seconds are judged.
5. **The judgement**: ``regret_table`` of the picks over every measured layout (``regret.tsv``);
   for every measured read of X, the model's pure prediction from the layout and the atlas's size
   (requests and bytes from ``predict_traffic`` over the read's recorded ranges, seconds from the
   backend's fit on those, decode from the encoding, as ``predictions()`` does) in
   ``predicted.tsv``, and ``prediction_errors`` against the targets in ``summary.md``, with a
   predicted-against-measured figure (``predicted_vs_measured.png``).

Writes ``picks.tsv``, ``stores.tsv``, ``reads.tsv``, ``predicted.tsv``, ``regret.tsv``,
``summary.md`` and the figure to --out.  Each step's result is kept in
WORK/heldout-study-CELLS-GENES/steps with the stores, and ``--resume`` reuses them (without it
that folder is made again; the source is kept either way).  Timings depend on what else the
machine runs: the summary gives its load at the start and the end.  Never run by the tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.geometry_study import (
    Geometry,
    Job,
    Log,
    Scheduler,
    describe_source,
    machine,
    md,
    run_child,
    tree_bytes,
)

HERE = Path(__file__).resolve().parent
BACKENDS = ("http", "s3")
#: Per-cell thinning: ~1,600 stored values per cell from the 40,000-gene pool (~2,440 per cell).
DEPTH = (0.40, 0.73)
#: Targets of the judgement (benchmarks/README.md, "The reference cost model at atlas scale").
MAX_REGRET = 1.2
MAX_SECONDS_MEDIAN_ERROR = 0.20
MAX_BYTES_ERROR = 0.10

LAYOUT = ["orientation", "chunk", "shard", "codec"]


@dataclass(frozen=True)
class Shape:
    """The held-out tissue: cells x genes, drawn from a pool of ``pool_cells`` cells."""

    cells: int
    genes: int
    pool_cells: int
    depth: tuple[float, float] = DEPTH

    @property
    def label(self) -> str:
        return f"{self.cells:,} cells x {self.genes:,} genes"


FULL = Shape(cells=250_000, genes=40_000, pool_cells=20_000)
QUICK = Shape(cells=20_000, genes=8_000, pool_cells=2_000)

# Both orientations, both codecs, unsharded and sharded, chunks 20x apart in cells and 100x in
# genes.  Quick: the cell chunks of 20,000 cells (one chunk) and 10,000 are made 10,000 and 5,000.
GRID = tuple(
    Geometry.parse(name)
    for name in (
        "cells-1000-shard-16-packed",
        "cells-10000-shard-1-packed",
        "cells-10000-shard-1-zstd",
        "cells-20000-shard-4-packed",
        "genes-5-shard-64-packed",
        "genes-50-shard-1-packed",
        "genes-50-shard-1-zstd",
        "genes-500-shard-1-packed",
    )
)
QUICK_GRID = tuple(
    Geometry.parse(name)
    for name in (
        "cells-1000-shard-16-packed",
        "cells-5000-shard-1-packed",
        "cells-5000-shard-1-zstd",
        "cells-10000-shard-4-packed",
        "genes-5-shard-64-packed",
        "genes-50-shard-1-packed",
        "genes-50-shard-1-zstd",
        "genes-500-shard-1-packed",
    )
)


def source_path(work: Path, shape: Shape) -> Path:
    low, high = shape.depth
    return work / (
        f"synthetic-heldout-{shape.cells}-{shape.genes}-pool{shape.pool_cells}"
        f"-depth{low:g}-{high:g}.zarr"
    )


def fits(g: Geometry, shape: Shape) -> bool:
    """Whether the layout has at least two chunks along its orientation."""
    units = shape.cells if g.orientation == "cells" else shape.genes
    return 2 * g.size <= units


def geometry_of(row) -> Geometry:
    return Geometry(str(row["orientation"]), int(row["chunk"]), int(row["shard"]), row["codec"])


# ----------------------------------------------------------------------------- the picks


def advised(source: Path) -> dict:
    """What ``chunkatlas advise SOURCE --backend B`` advises per X pattern, for each backend
    (:func:`chunkatlas.model.advised_picks`, as the workflow's ``judge`` section runs it)."""
    from chunkatlas.model import advised_picks

    return advised_picks(str(source), list(BACKENDS))


# ----------------------------------------------------------------------------- the jobs


def build_jobs(
    shape: Shape, grid: tuple[Geometry, ...], work: Path, run_dir: Path, repeats: int
) -> dict[str, Callable[..., list[Job]]]:
    """The study's jobs in phases: the source, the picks, the writes (of the grid and the
    picks), the reads.  Each phase's jobs are built once the phase before it is done (the picks
    decide which stores there are)."""
    source = source_path(work, shape)
    stores_dir, tables_dir, spill_root = run_dir / "stores", run_dir / "tables", run_dir / "spill"

    def store_of(g: Geometry) -> Path:
        return stores_dir / g.name / "store.zarr"

    def make_source() -> dict:
        if source.exists():
            return {"cached": True, **describe_source(source)}
        spec = {
            "small": str(source),
            "big": str(source),
            "extend": False,
            "cells": shape.cells,
            "big_cells": shape.cells,
            "pool": shape.pool_cells,
            "genes": shape.genes,
            "depth": list(shape.depth),
        }
        return run_child("source", spec)

    def write(g: Geometry) -> Callable[[], dict]:
        def run() -> dict:
            dest = store_of(g)
            shutil.rmtree(dest.parent, ignore_errors=True)
            dest.parent.mkdir(parents=True)
            spill = spill_root / g.name
            shutil.rmtree(spill, ignore_errors=True)
            spill.mkdir(parents=True)
            spec = {"source": str(source), "dest": str(dest), "geometry": g.name}
            try:
                result = run_child("write", spec, env={"TMPDIR": str(spill)}, watch=spill)
            finally:
                shutil.rmtree(spill, ignore_errors=True)
            return {"geometry": g.name, **result}

        return run

    def measure(g: Geometry) -> Callable[[], dict]:
        from chunkatlas.study import PATTERNS

        def run() -> dict:
            tables_dir.mkdir(parents=True, exist_ok=True)
            table = tables_dir / f"{g.name}.tsv"
            spec = {
                "store": str(store_of(g)),
                "network": "object_store",
                "backends": list(BACKENDS),
                "patterns": list(PATTERNS),
                "table": str(table),
                "repeats": repeats,
            }
            load = os.getloadavg()[0]  # the machine's, at the start and the end of the reads
            result = run_child("measure", spec)
            loads = {"load_start": round(load, 2), "load_end": round(os.getloadavg()[0], 2)}
            rows = len(pd.read_csv(table, sep="\t"))
            return {"table": str(table), "rows": rows, **loads, **result}

        return run

    def stores(picked: dict) -> list[Geometry]:
        picks = [geometry_of(p) for p in picked["picks"]]
        return list(dict.fromkeys([*grid, *picks]))

    return {
        "source": lambda: [Job("source", make_source)],
        "picks": lambda: [Job("picks", lambda: advised(source), ("source",))],
        "writes": lambda picked: [
            Job(
                f"write {g.name}",
                write(g),
                ("source",),
                ("spill",) if g.orientation == "genes" else (),
            )
            for g in stores(picked)
        ],
        "reads": lambda picked: [
            Job(f"read {g.name}", measure(g), (f"write {g.name}",)) for g in stores(picked)
        ],
    }


# ----------------------------------------------------------------------------- tables


def store_table(stores: list[Geometry], grid, picks: pd.DataFrame, results: dict) -> pd.DataFrame:
    rows = []
    for g in stores:
        written = results.get(f"write {g.name}")
        if not written:
            continue
        read = results.get(f"read {g.name}")
        decode = None
        if read:
            decode = float(pd.read_csv(read["table"], sep="\t")["decode_seconds"].iloc[0])
        picked = picks[picks["store"] == g.name]
        rows.append(
            {
                "store": g.name,
                **dict(zip(LAYOUT, (g.orientation, g.size, g.shard, g.codec), strict=True)),
                "in_grid": g in grid,
                "picked_for": ", ".join(f"{r.pattern} ({r.backend})" for r in picked.itertuples()),
                "nnz": written["nnz"],
                "objects": written["objects"],
                "store_mb": written["store_mb"],
                "x_objects": written["x_objects"],
                "x_mb": written["x_mb"],
                "decode_seconds": decode,
                "write_seconds": written["seconds"],
                "write_peak_rss_mb": written["peak_rss_mb"],
                "spill_peak_mb": written["spill_peak_mb"],
                "read_step_seconds": read["step_seconds"] if read else None,
                "read_peak_rss_mb": read["peak_rss_mb"] if read else None,
                "read_load": f"{read.get('load_start')}-{read.get('load_end')}" if read else None,
            }
        )
    return pd.DataFrame(rows)


def read_table(stores: list[Geometry], results: dict, atlas: dict) -> pd.DataFrame:
    """Every measured read, with its store's layout and the atlas's size."""
    frames = []
    for g in stores:
        done = results.get(f"read {g.name}")
        if not done:
            continue
        table = pd.read_csv(done["table"], sep="\t", keep_default_na=False, na_values=[""])
        table.insert(0, "store", g.name)
        for at, (column, value) in enumerate(
            zip(LAYOUT, (g.orientation, g.size, g.shard, g.codec), strict=True), start=1
        ):
            table.insert(at, column, value)
        frames.append(table)
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    table["n_obs"], table["n_vars"], table["nnz"] = atlas["n_obs"], atlas["n_vars"], atlas["nnz"]
    return table


def predicted_reads(reads: pd.DataFrame, atlas, model) -> tuple[pd.DataFrame, list[str]]:
    """Per measured read of X: the model's pure prediction (:func:`chunkatlas.model.
    predicted_reads`, as the workflow's judgement makes it), and beside it bytes with the
    reference model's own bytes per value and the fit's seconds on the measured traffic and
    decode pass (the timing fit alone).  Also the stores the model has no encoding for."""
    from chunkatlas.model import Layout, load_cost_model, predict_traffic
    from chunkatlas.model import predicted_reads as model_predictions
    from chunkatlas.study import parse_ranges

    table, unpredicted = model_predictions(reads, atlas, model)
    if table.empty:
        return table, unpredicted
    reference = load_cost_model().encodings
    by_reference = []
    for read in table.merge(reads[["store", "backend", "pattern", "ranges"]]).itertuples():
        layout = Layout(read.orientation, int(read.chunk), int(read.shard), read.codec)
        plain = reference.get(
            (layout.orientation, layout.codec), model.encodings[(layout.orientation, layout.codec)]
        )
        extra = model.extra_requests.get((read.pattern, layout.orientation, layout.shard > 1), 0)
        ranges = parse_ranges(read.ranges)
        by_reference.append(
            predict_traffic(atlas, layout, read.pattern, plain, extra, ranges=ranges).bytes
        )
    table["predicted_bytes_reference_encoding"] = by_reference
    table["predicted_seconds_measured_traffic"] = np.nan
    timing = measured_rows(table)
    for backend, index in table.groupby("backend").groups.items():
        fit = model.fit[str(backend)]
        table.loc[index, "predicted_seconds_measured_traffic"] = fit.predict(
            timing.loc[index], fit.reader
        )
    return table, unpredicted


def measured_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows with what was measured: requests, bytes, X's stored bytes and decode pass."""
    return table.assign(store_bytes=table["x_bytes"])


# ----------------------------------------------------------------------------- summary


def verdicts(regret: pd.DataFrame, errors: dict[str, float]) -> pd.DataFrame:
    def row(what: str, value: str, target: str, met: bool | None) -> dict:
        verdict = "not measured" if met is None else ("met" if met else "not met")
        return {"measure": what, "value": value, "target": target, "verdict": verdict}

    rows = []
    if regret.empty:
        rows.append(row("regret of the picks", "-", f"<= {MAX_REGRET}", None))
    else:
        worst = regret.loc[regret["regret"].idxmax()]
        rows.append(
            row(
                "regret of the picks (largest)",
                f"{worst['regret']:.2f} ({worst['pattern']}, {worst['backend']}); "
                f"{int((regret['regret'] <= MAX_REGRET).sum())} of {len(regret)} within",
                f"<= {MAX_REGRET} for every backend and pattern",
                bool((regret["regret"] <= MAX_REGRET).all()),
            )
        )
    if not errors:
        for what in ("seconds median error", "within 2x", "requests exact", "bytes largest error"):
            rows.append(row(what, "-", "", None))
        return pd.DataFrame(rows)
    reads = int(errors["reads"])
    rows += [
        row(
            "seconds, median error",
            f"{errors['seconds_median_error']:.1%}",
            f"<= {MAX_SECONDS_MEDIAN_ERROR:.0%}",
            errors["seconds_median_error"] <= MAX_SECONDS_MEDIAN_ERROR,
        ),
        row(
            "seconds, share within 2x",
            f"{errors['seconds_within_2x']:.1%} ({round(errors['seconds_within_2x'] * reads)} "
            f"of {reads})",
            "all",
            errors["seconds_within_2x"] == 1.0,
        ),
        row(
            "requests, share exact",
            f"{errors['requests_exact']:.1%} ({round(errors['requests_exact'] * reads)} "
            f"of {reads})",
            "all",
            errors["requests_exact"] == 1.0,
        ),
        row(
            "bytes, largest error",
            f"{errors['bytes_largest_error']:.1%}",
            f"<= {MAX_BYTES_ERROR:.0%}",
            errors["bytes_largest_error"] <= MAX_BYTES_ERROR,
        ),
    ]
    return pd.DataFrame(rows)


def error_breakdown(predicted: pd.DataFrame) -> pd.DataFrame:
    """Per pattern and backend: reads, median and largest seconds error, bytes error."""
    rows = []
    for (pattern, backend), group in predicted.groupby(["pattern", "backend"], sort=False):
        ratio = group["seconds_ratio"]
        timing = group["predicted_seconds_measured_traffic"] / group["seconds"]
        rows.append(
            {
                "pattern": pattern,
                "backend": backend,
                "reads": len(group),
                "seconds median error": f"{(ratio - 1).abs().median():.0%}",
                "predicted / measured (range)": f"{ratio.min():.2f}-{ratio.max():.2f}",
                "timing fit alone (range)": f"{timing.min():.2f}-{timing.max():.2f}",
                "requests exact": f"{int((group['requests_error'] == 0).sum())}/{len(group)}",
                "bytes largest error": f"{group['bytes_error'].abs().max():.1%}",
            }
        )
    return pd.DataFrame(rows)


def wide_reads(reads: pd.DataFrame) -> pd.DataFrame:
    """Each store's cost per pattern and backend: requests / MB / seconds."""
    cell = reads.assign(
        cost=[
            f"{r} / {b / 1e6:,.1f} / {s:.2f}"
            for r, b, s in zip(reads["requests"], reads["bytes"], reads["seconds"], strict=True)
        ]
    )
    wide = cell.pivot_table(
        index=["pattern", "backend"], columns="store", values="cost", aggfunc="first"
    )[list(reads["store"].unique())]  # the stores in the study's order: the grid, the picks
    order = {p: i for i, p in enumerate(("open", "one_gene", "fifty_genes", "cell_block", "all_x"))}
    wide = wide.reset_index()
    return wide.sort_values(["pattern", "backend"], key=lambda s: s.map(order).fillna(s))


def summary(tables: dict[str, pd.DataFrame], info: dict) -> str:
    picks, stores, reads = tables["picks"], tables["stores"], tables["reads"]
    regret, predicted = tables["regret"], tables["predicted"]
    errors, repeats = info["errors"], info["repeats"]
    cold = "one cold read" if repeats == 1 else f"the median of {repeats} cold reads"
    lines = [
        f"# The reference cost model on a held-out tissue: {info['shape']}",
        "",
        f"`{info['command']}`: {info['total_seconds'] / 60:.1f} min on {info['machine']}.",
        f"Load average (1, 5, 15 min) at the start {info['load_start']}, at the end "
        f"{info['load_end']}; 1-min load at the start and the end of each store's reads: "
        f"{info['read_load']} (stores.tsv, read_load)"
        + (
            f"; {info['resumed']} of {info['steps']} steps done by an earlier run (--resume)."
            if info["resumed"]
            else "."
        ),
        "",
        f"Source: {info['source']}.",
        f"Model: {info['origin']}.",
        f"Picks and predictions use the source's own bytes per value: {info['encodings_text']}.",
        "",
        f"Reads: every store over HTTP (aiohttp) and S3 (moto) behind the emulated object-store "
        f"network (30 ms to the first byte, 160 Mbit/s per response), every pattern including "
        f"all_x, {cold} each, by plain anndata, one store at a time.",
        "",
        "## Targets",
        "",
        md(verdicts(regret, errors)),
        "",
        "Seconds are the model's pure predictions: requests and bytes from the layout, the atlas's "
        "size and each read's recorded ranges (`predict_traffic`), X's bytes and decode seconds "
        "from the encoding, seconds from the reference fit of the backend; none of the read's "
        "measurements goes into them.",
    ]
    if info["unpredicted"]:
        lines.append(
            f"Not predicted (the model has no encoding of their orientation and codec, so "
            f"advise never picks them; measured, so they count in the regret): "
            f"{', '.join(info['unpredicted'])}."
        )
    if info.get("failed"):
        lines += ["", "**Failed steps:**", ""]
        lines += [f"* {name}: {why.splitlines()[0]}" for name, why in info["failed"].items()]
    lines += [
        "",
        "## Regret of the picks",
        "",
        "A pick's measured seconds over the fastest measured layout's, of that backend and "
        "pattern (every store measured: the grid and the picks).",
        "",
        md(regret.round(3)) if not regret.empty else "(not measured)",
        "",
        "## The picks (`chunkatlas advise SOURCE --backend B`, reader anndata)",
        "",
        md(
            picks[
                [
                    "backend",
                    "pattern",
                    "store",
                    "requests",
                    "bytes",
                    "seconds",
                    "store_objects",
                ]
            ]
            .assign(bytes=(picks["bytes"] / 1e6).round(3), seconds=picks["seconds"].round(3))
            .rename(columns={"seconds": "predicted seconds", "bytes": "predicted MB"})
        )
        if not picks.empty
        else "(none)",
        "",
        "## Errors per pattern and backend",
        "",
        "predicted / measured seconds, and what the timing fit alone predicts from the measured "
        "requests, bytes and decode pass (so the traffic model's share of the error shows).",
        "",
        md(error_breakdown(predicted)) if not predicted.empty else "(none)",
        "",
    ]
    if not predicted.empty:
        outside = predicted[(predicted["seconds_ratio"] > 2) | (predicted["seconds_ratio"] < 0.5)]
        off = predicted[predicted["requests_error"] != 0]
        if not outside.empty:
            lines += ["Reads predicted outside 2x:", ""]
            lines += [
                f"* {r.store} {r.pattern} over {r.backend}: {r.seconds:.3g} s measured, "
                f"{r.predicted_seconds:.3g} s predicted"
                for r in outside.itertuples()
            ]
            lines.append("")
        if not off.empty:
            lines += ["Requests predicted wrong:", ""]
            lines += [
                f"* {r.store} {r.pattern} over {r.backend}: {r.requests} measured, "
                f"{r.predicted_requests:g} predicted"
                for r in off.itertuples()
            ]
            lines.append("")
    lines += [
        "## Every store and pattern",
        "",
        "Each cell: requests / MB / seconds.",
        "",
        md(wide_reads(reads)) if not reads.empty else "(not measured)",
        "",
        "## Stores",
        "",
        md(stores) if not stores.empty else "(none)",
        "",
        "Figure: `predicted_vs_measured.png`, the model's pure predictions (as above) against "
        "the measured seconds, every read of X (its title gives the reference fit's own "
        "coefficients and in-sample R²).",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20,000 cells x 8,000 genes")
    parser.add_argument("--cells", type=int, default=None, help="cells of the held-out tissue")
    parser.add_argument("--genes", type=int, default=None, help="genes of the held-out tissue")
    parser.add_argument("--work", default=str(HERE / "data"), help="source and stores")
    parser.add_argument("--out", default=str(HERE / "results" / "heldout_study"))
    parser.add_argument("--grid", default=None, help="store names, e.g. cells-10000-shard-1-zstd")
    parser.add_argument("--repeats", type=int, default=1, help="cold reads per pattern")
    parser.add_argument("--jobs", type=int, default=2, help="stores written at a time")
    parser.add_argument(
        "--resume", action="store_true", help="reuse the steps an earlier run finished"
    )
    args = parser.parse_args()
    if args.repeats < 1 or args.jobs < 1:
        sys.exit("--repeats and --jobs must be at least 1")
    shape = QUICK if args.quick else FULL
    if args.cells:
        shape = replace(shape, cells=args.cells)
    if args.genes:
        shape = replace(shape, genes=args.genes)
    grid = QUICK_GRID if args.quick else GRID
    if args.grid:
        grid = tuple(Geometry.parse(name) for name in args.grid.split(","))
    unfit = [g.name for g in grid if not fits(g, shape)]
    if unfit:
        sys.exit(f"layouts of fewer than two chunks at {shape.label}: {', '.join(unfit)} (--grid)")
    work, out = Path(args.work).resolve(), Path(args.out).resolve()
    run_dir = work / f"heldout-study-{shape.cells}-{shape.genes}"
    if not args.resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    log = Log()
    info = {
        "command": "python -m benchmarks.heldout_study " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "load_start": tuple(round(x, 2) for x in os.getloadavg()),
        "shape": shape.label,
        "repeats": args.repeats,
    }
    log(f"machine: {info['machine']}")
    log(f"held-out tissue {shape.label}, pool {shape.pool_cells:,}, depth {shape.depth}")
    log(f"grid: {', '.join(g.name for g in grid)}")
    log(f"work: {run_dir}; out: {out}")
    phases = build_jobs(shape, grid, work, run_dir, args.repeats)
    scheduler = Scheduler(run_dir / "steps", log, slots=1, resume=args.resume)
    scheduler.run(phases["source"]())
    scheduler.run(phases["picks"]())
    picked = scheduler.results.get("picks")
    stores: list[Geometry] = []
    if picked:
        picks = pd.DataFrame(picked["picks"])
        for row in picks.itertuples():
            log(f"pick for {row.pattern} over {row.backend}: {row.store} ({row.seconds:.3g} s)")
        stores = list(dict.fromkeys([*grid, *(geometry_of(p) for p in picked["picks"])]))
        log(f"stores: {len(stores)} ({len(stores) - len(grid)} picks not in the grid)")
        scheduler.slots = args.jobs  # writes side by side; reads one at a time, alone
        scheduler.run(phases["writes"](picked))
        scheduler.slots = 1
        scheduler.run(phases["reads"](picked))
    else:
        picks = pd.DataFrame()
    info["load_end"] = tuple(round(x, 2) for x in os.getloadavg())
    results = scheduler.results

    source = results.get("source")
    info["source"] = (
        f"{source['cells']:,} cells x {shape.genes:,} genes, {source['values_per_cell']:,} stored "
        f"values per cell ({source['nnz']:,}), {source['mb']:,} MB; drawn from a pool of "
        f"{shape.pool_cells:,} simulated cells thinned at a per-cell depth of "
        f"{shape.depth[0]}-{shape.depth[1]}"
        if source
        else "not made"
    )
    tables = judge(picked, picks, stores, grid, results, info, out, log)
    info["total_seconds"] = log.elapsed()
    info["resumed"] = len(scheduler.resumed)
    info["steps"] = len(scheduler.results) + len(scheduler.failed)
    loads = [
        r[k] for r in results.values() if "load_start" in r for k in ("load_start", "load_end")
    ]
    info["read_load"] = f"{min(loads)}-{max(loads)}" if loads else "-"
    info["failed"] = scheduler.failed
    text = summary(tables, info)
    (out / "summary.md").write_text(text)
    print("\n" + text)
    log(f"tables, figure and summary.md in {out}; stores {tree_bytes(run_dir) / 1e9:.1f} GB")
    if scheduler.failed:
        sys.exit(f"{len(scheduler.failed)} step(s) failed: {', '.join(scheduler.failed)}")


def judge(picked, picks, stores, grid, results, info, out: Path, log: Log) -> dict:
    """The tables (written to ``out``), the errors and the figure."""
    from chunkatlas.errors import ChunkatlasError
    from chunkatlas.model import (
        X_PATTERNS,
        Atlas,
        model_of_picks,
        prediction_errors,
        pure_rows,
        regret_table,
    )
    from chunkatlas.report import plot_cost_fit

    info.update(errors={}, unpredicted=[], origin="-", encodings_text="-")
    empty = pd.DataFrame()
    tables = {"picks": picks, "stores": empty, "reads": empty, "predicted": empty, "regret": empty}
    if picked is None:
        return tables
    model = model_of_picks(picked)
    atlas = Atlas(**picked["atlas"])
    info["origin"] = model.origin
    info["encodings_text"] = picked["encodings_text"]
    tables["stores"] = store_table(stores, grid, picks, results)
    reads = read_table(stores, results, picked["atlas"])
    tables["reads"] = reads
    if not reads.empty:
        x_reads = reads[reads["pattern"].isin(X_PATTERNS)]
        try:
            tables["regret"] = regret_table(x_reads, picks)
        except ChunkatlasError as err:  # a pick not measured (its step failed)
            log(f"no regret table: {err}")
        predicted, info["unpredicted"] = predicted_reads(reads, atlas, model)
        tables["predicted"] = predicted
        if not predicted.empty:
            info["errors"] = prediction_errors(predicted)
            figure = out / "predicted_vs_measured.png"
            plot_cost_fit(pure_rows(predicted), model.fit, figure)
            log(f"figure: {figure}")
    for name, table in tables.items():
        table.to_csv(out / f"{name}.tsv", sep="\t", index=False)
    return tables


if __name__ == "__main__":
    main()
