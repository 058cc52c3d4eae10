"""One table row per store (tissue x chunk x shard x codec), from manifests, results and
benchmark files."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import pandas as pd

from chunkatlas.analysis import FUSED_STEPS, MEASURES, SCANPY_STEPS
from chunkatlas.rewrite import DEFAULT_CODEC
from chunkatlas.store import load_manifest, read_elements, read_objects_record
from chunkatlas.study import CONDITIONS, Measurement

#: What names a store's geometry in every table.
GEOMETRY_COLUMNS = ["tissue", "orientation", "chunk", "shard", "codec"]
REMOTE_METRICS = ("requests", "bytes", "seconds")  # per pattern in summary.tsv; all in remote.tsv
# The analysis steps in the order they run (fused engine, then the scanpy engine's own).
PASSES = (*FUSED_STEPS, *(step for step in SCANPY_STEPS if step not in FUSED_STEPS))


def chunk_title(tissue: str, chunk: int | str, orientation: str) -> str:
    """A figure title naming the tissue and the store's geometry, e.g. "pbmc, gene-major, 5
    genes per chunk" (what a chunk size counts is the store's orientation)."""
    return f"{tissue}, {orientation[:-1]}-major, {int(chunk):,} {orientation} per chunk"


def read_benchmark(path: str | os.PathLike) -> dict[str, float]:
    """Seconds and peak memory (max RSS, MB) of one Snakemake benchmark file (mean of repeats)."""
    table = pd.read_csv(path, sep="\t")
    return {"seconds": float(table["s"].mean()), "max_rss_mb": float(table["max_rss"].mean())}


@dataclass(frozen=True)
class GridPoint:
    """The files of one store: a tissue in one geometry (orientation, chunk, chunks per shard,
    codec); ``result`` is None for a store that is measured but not analysed."""

    tissue: str
    chunk: int
    manifest: str
    result: str | None
    benchmarks: Mapping[str, str]
    remote: str | None = None
    shard: int = 1
    codec: str = DEFAULT_CODEC
    orientation: str = "cells"  # also what the chunk size counts: cells or genes per chunk
    store_objects: str | None = None  # the records of the store's and result's objects
    result_objects: str | None = None

    def geometry(self) -> dict[str, object]:
        return {
            "tissue": self.tissue,
            "orientation": self.orientation,
            "chunk": self.chunk,
            "shard": self.shard,
            "codec": self.codec,
        }


def summary_row(point: GridPoint) -> dict[str, object]:
    manifest = load_manifest(point.manifest)
    row: dict[str, object] = {
        **point.geometry(),
        "n_obs": manifest["n_obs"],
        "n_vars": manifest["n_vars"],
        "nnz": manifest["x_nnz"],
        "store_bytes": manifest["stored_bytes"],
        "objects": manifest["objects"],
    }
    provenance = {}
    if point.result:
        var, uns = read_elements(point.result, "var", "uns")
        row["n_hvg"] = int(var["highly_variable"].sum())
        provenance = uns.get("chunkatlas", {})
        row["analysis_read"] = provenance.get("read", "local")
    for step, measured in ordered_passes(provenance):
        for measure in MEASURES:
            row[f"analyze_{step}_{measure}"] = measured[measure]
    if point.remote:
        remote = pd.read_csv(point.remote, sep="\t")
        for entry in remote.itertuples():
            for metric in REMOTE_METRICS:
                row[f"{entry.backend}_{entry.pattern}_{metric}"] = getattr(entry, metric)
        for column in ("latency_ms", "bandwidth_mbps"):  # the emulated network, in every row
            if column in remote:
                row[column] = remote[column].iloc[0]
        if "decode_seconds" in remote:  # measured with the store's geometry costs
            row["decode_seconds"] = float(remote["decode_seconds"].iloc[0])
        # the same block on every backend
        row["cell_block_cells"] = int(
            remote.loc[remote["pattern"] == "cell_block", "cells"].iloc[0]
        )
        row["remote_repeats"] = int(remote["repeats"].max())
    for name, path in point.benchmarks.items():  # the workflow's steps, in its order
        if os.path.exists(path):
            bench = read_benchmark(path)
            row[f"{name}_seconds"] = round(bench["seconds"], 3)
            row[f"{name}_max_rss_mb"] = round(bench["max_rss_mb"], 1)
    row.update(moved(point))
    workers_mb = provenance.get("workers_peak_rss_mb")
    if workers_mb is not None:
        row["analyze_workers_max_rss_mb"] = workers_mb
        # the job's own process tree holds its workers only when it started them itself
        if provenance.get("cluster", "local") != "local" and "analyze_max_rss_mb" in row:
            row["analyze_max_rss_mb"] = round(row["analyze_max_rss_mb"] + workers_mb, 1)
    return row


def moved(point: GridPoint) -> dict[str, int]:
    """Objects and bytes each job moves for this store when the run keeps its outputs in an
    object store (``{job}_moved_objects``, ``{job}_moved_bytes``), and their totals
    (``moved_…``); in a local run, what such a run would move.  One object moves per request,
    so objects are also requests.

    rechunk uploads the store and consolidate retrieves it; remote retrieves it consolidated
    (when the store is measured); analyze uploads the result and plot_pca retrieves it.
    """
    jobs = []
    if point.store_objects:
        written = read_objects_record(point.store_objects)
        consolidated = load_manifest(point.manifest).get("moved", written)  # since "moved"
        jobs += [("rechunk", written), ("consolidate", written)]
        if point.remote:
            jobs.append(("remote", consolidated))
    if point.result and point.result_objects:
        result = read_objects_record(point.result_objects)
        jobs += [("analyze", result), ("plot_pca", result)]
    row = {}
    for job, record in jobs:
        row[f"{job}_moved_objects"] = record["objects"]
        row[f"{job}_moved_bytes"] = record["bytes"]
    if jobs:
        row["moved_objects"] = sum(record["objects"] for _, record in jobs)
        row["moved_bytes"] = sum(record["bytes"] for _, record in jobs)
    return row


def ordered_passes(provenance: Mapping) -> list[tuple[str, Mapping]]:
    """The recorded passes of an analysis (``uns['chunkatlas']['passes']``) in the order they
    ran."""
    passes = provenance.get("passes", {})
    rank = {name: at for at, name in enumerate(PASSES)}
    return sorted(passes.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


def passes_table(points: Sequence[GridPoint]) -> pd.DataFrame:
    """Every analysis's passes, long: the store's geometry, where it was read, and each pass's
    requests, bytes, seconds and retries."""
    rows = []
    for point in points:
        if not point.result:
            continue
        (uns,) = read_elements(point.result, "uns")
        provenance = uns.get("chunkatlas", {})
        for at, (step, measured) in enumerate(ordered_passes(provenance)):
            rows.append(
                {
                    **point.geometry(),
                    "read": provenance.get("read", "local"),
                    "step": step,
                    "order": at,
                    **{measure: measured[measure] for measure in MEASURES},
                }
            )
    columns = [*GEOMETRY_COLUMNS, "read", "step", "order"]
    return pd.DataFrame(rows, columns=[*columns, *MEASURES])


def build_summary(points: Sequence[GridPoint]) -> pd.DataFrame:
    rows = [summary_row(p) for p in points]
    return pd.DataFrame(rows).sort_values(GEOMETRY_COLUMNS, kind="stable").reset_index(drop=True)


def remote_table(points: Sequence[GridPoint]) -> pd.DataFrame:
    """All remote measurements, long: the store's geometry (tissue, orientation, chunk, shard,
    codec), backend, pattern, server, cells and genes read, requests, bytes, repeats, seconds
    (median, min, max of the cold reads), the emulated network, and the store's objects, bytes
    and decode seconds."""
    first = [*GEOMETRY_COLUMNS, "backend", "pattern"]
    frames = [pd.read_csv(p.remote, sep="\t").assign(**p.geometry()) for p in points if p.remote]
    if not frames:
        measured = [f.name for f in fields(Measurement) if f.name != "pattern"]
        conditions = [c for c in CONDITIONS if c not in first]
        return pd.DataFrame(columns=[*first, *conditions, *measured])
    table = pd.concat(frames, ignore_index=True)
    return table[first + [c for c in table.columns if c not in first]]


def reference_geometry(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of one geometry per chunk size — the first orientation (cell-major where there
    is one), the smallest shard setting, the first codec and the first backend measured — so
    that figures with a line per tissue against chunk size stay lines; the geometry figures
    compare the rest.  ``attrs["left_out"]`` counts the rows left out."""
    keep = pd.Series(True, index=table.index)
    for column in ("orientation", "shard", "codec", "backend"):
        if column in table and len(table):
            first = (
                table[column].min() if column in ("orientation", "shard") else table[column].iloc[0]
            )
            keep &= table[column] == first
    kept = table[keep].copy()
    kept.attrs["left_out"] = int((~keep).sum())  # rows of other geometries: titles say so
    return kept
