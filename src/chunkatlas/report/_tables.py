"""One table row per store (tissue x chunk x shard x codec), from manifests, results and
benchmark files."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import pandas as pd

from chunkatlas.analysis._metering import MEASURES
from chunkatlas.rewrite._consolidate import load_manifest
from chunkatlas.rewrite._geometry import DEFAULT_CODEC
from chunkatlas.store._layout import read_elements
from chunkatlas.study._measure import CONDITIONS, Measurement

STEPS = ("fetch", "rechunk", "consolidate", "analyze", "remote")
REMOTE_METRICS = ("requests", "bytes", "seconds")  # per pattern in summary.tsv; all in remote.tsv
# The analysis steps in the order they run (fused engine, then the scanpy engine's).
PASSES = (
    "open",
    "library_sizes",
    "count_moments",
    "loess",
    "clipped_moments",
    "moments",
    "moments_again",
    "gram",
    "eigh",
    "projection",
    "check_counts",
    "normalize_total",
    "log1p",
    "highly_variable_genes",
    "pca",
)


def chunk_unit(dense_axis: str, *, sparse: bool = False) -> str:
    """What one chunk size counts: "genes" for dense X chunked along var (all cells x N
    genes), else "cells" (sparse X is always chunked by cells, whatever ``dense_axis``)."""
    return "genes" if dense_axis == "var" and not sparse else "cells"


def chunk_title(tissue: str, chunk: int | str, dense_axis: str, *, sparse: bool = False) -> str:
    """A figure title naming the tissue and chunk size, e.g. "pbmc, 5 genes per chunk"."""
    return f"{tissue}, {int(chunk):,} {chunk_unit(dense_axis, sparse=sparse)} per chunk"


def read_benchmark(path: str | os.PathLike) -> dict[str, float]:
    """Seconds and peak memory (max RSS, MB) of one Snakemake benchmark file (mean of repeats)."""
    table = pd.read_csv(path, sep="\t")
    return {"seconds": float(table["s"].mean()), "max_rss_mb": float(table["max_rss"].mean())}


@dataclass(frozen=True)
class GridPoint:
    """The files of one store: a tissue in one geometry (chunk, chunks per shard, codec)."""

    tissue: str
    chunk: int
    manifest: str
    result: str
    benchmarks: Mapping[str, str]
    remote: str | None = None
    shard: int = 1
    codec: str = DEFAULT_CODEC
    dense_axis: str = "obs"  # the config's rechunk.dense_axis: what the chunk size counts

    def unit(self) -> str:
        return chunk_unit(self.dense_axis, sparse=load_manifest(self.manifest)["x_sparse"])


def summary_row(point: GridPoint) -> dict[str, object]:
    manifest = load_manifest(point.manifest)
    var, uns = read_elements(point.result, "var", "uns")
    row: dict[str, object] = {
        "tissue": point.tissue,
        "chunk": point.chunk,
        "shard": point.shard,
        "codec": point.codec,
        "chunk_unit": point.unit(),
        "n_obs": manifest["n_obs"],
        "n_vars": manifest["n_vars"],
        "nnz": manifest["x_nnz"],
        "store_bytes": manifest["stored_bytes"],
        "objects": manifest["objects"],
        "n_hvg": int(var["highly_variable"].sum()),
    }
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
    for name in STEPS:
        if name in point.benchmarks and os.path.exists(point.benchmarks[name]):
            bench = read_benchmark(point.benchmarks[name])
            row[f"{name}_seconds"] = round(bench["seconds"], 3)
            row[f"{name}_max_rss_mb"] = round(bench["max_rss_mb"], 1)
    workers_mb = provenance.get("workers_peak_rss_mb")
    if workers_mb is not None:
        row["analyze_workers_max_rss_mb"] = workers_mb
        # the job's own process tree holds its workers only when it started them itself
        if provenance.get("cluster", "local") != "local" and "analyze_max_rss_mb" in row:
            row["analyze_max_rss_mb"] = round(row["analyze_max_rss_mb"] + workers_mb, 1)
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
        (uns,) = read_elements(point.result, "uns")
        provenance = uns.get("chunkatlas", {})
        for at, (step, measured) in enumerate(ordered_passes(provenance)):
            rows.append(
                {
                    "tissue": point.tissue,
                    "chunk": point.chunk,
                    "shard": point.shard,
                    "codec": point.codec,
                    "chunk_unit": point.unit(),
                    "read": provenance.get("read", "local"),
                    "step": step,
                    "order": at,
                    **{measure: measured[measure] for measure in MEASURES},
                }
            )
    columns = ["tissue", "chunk", "shard", "codec", "chunk_unit", "read", "step", "order"]
    return pd.DataFrame(rows, columns=[*columns, *MEASURES])


def build_summary(points: Sequence[GridPoint]) -> pd.DataFrame:
    rows = [summary_row(p) for p in points]
    order = ["tissue", "chunk", "shard", "codec"]
    return pd.DataFrame(rows).sort_values(order, kind="stable").reset_index(drop=True)


def remote_table(points: Sequence[GridPoint]) -> pd.DataFrame:
    """All remote measurements, long: the store's geometry (tissue, chunk, shard, codec, chunk
    unit), backend, pattern, server, cells and genes read, requests, bytes, repeats, seconds
    (median, min, max of the cold reads), the emulated network, and the store's objects, bytes
    and decode seconds."""
    first = ["tissue", "chunk", "shard", "codec", "chunk_unit", "backend", "pattern"]
    frames = [
        pd.read_csv(p.remote, sep="\t").assign(
            tissue=p.tissue, chunk=p.chunk, shard=p.shard, codec=p.codec, chunk_unit=p.unit()
        )
        for p in points
        if p.remote
    ]
    if not frames:
        measured = [f.name for f in fields(Measurement) if f.name != "pattern"]
        conditions = [c for c in CONDITIONS if c not in first]
        return pd.DataFrame(columns=[*first, *conditions, *measured])
    table = pd.concat(frames, ignore_index=True)
    return table[first + [c for c in table.columns if c not in first]]


def reference_geometry(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of one geometry per chunk size — the smallest shard setting, the first codec
    and the first backend measured — so that figures with a line per tissue against chunk size
    stay lines; the geometry figures compare the rest."""
    keep = pd.Series(True, index=table.index)
    for column in ("shard", "codec", "backend"):
        if column in table and len(table):
            first = table[column].min() if column == "shard" else table[column].iloc[0]
            keep &= table[column] == first
    return table[keep]
