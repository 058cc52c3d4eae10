"""One table row per tissue x chunk size, from manifests, results and benchmark files."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import pandas as pd

from chunkatlas.consolidate import load_manifest
from chunkatlas.remote.measure import CONDITIONS, Measurement
from chunkatlas.store.layout import read_store

STEPS = ("fetch", "rechunk", "consolidate", "analyze", "remote")
REMOTE_METRICS = ("requests", "bytes", "seconds")  # per pattern in summary.tsv; all in remote.tsv


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
    """The files of one tissue x chunk size."""

    tissue: str
    chunk: int
    manifest: str
    result: str
    benchmarks: Mapping[str, str]
    remote: str | None = None
    dense_axis: str = "obs"  # the config's rechunk.dense_axis: what the chunk size counts

    def unit(self) -> str:
        return chunk_unit(self.dense_axis, sparse=load_manifest(self.manifest)["x_sparse"])


def summary_row(point: GridPoint) -> dict[str, object]:
    manifest = load_manifest(point.manifest)
    result = read_store(point.result)
    row: dict[str, object] = {
        "tissue": point.tissue,
        "chunk": point.chunk,
        "chunk_unit": point.unit(),
        "n_obs": manifest["n_obs"],
        "n_vars": manifest["n_vars"],
        "nnz": manifest["x_nnz"],
        "store_bytes": manifest["stored_bytes"],
        "n_hvg": int(result.var["highly_variable"].sum()),
    }
    if point.remote:
        remote = pd.read_csv(point.remote, sep="\t")
        for entry in remote.itertuples():
            for metric in REMOTE_METRICS:
                row[f"{entry.pattern}_{metric}"] = getattr(entry, metric)
        row["cell_block_cells"] = int(remote.set_index("pattern").loc["cell_block", "cells"])
        row["remote_repeats"] = int(remote["repeats"].max())
    for name in STEPS:
        if name in point.benchmarks and os.path.exists(point.benchmarks[name]):
            bench = read_benchmark(point.benchmarks[name])
            row[f"{name}_seconds"] = round(bench["seconds"], 3)
            row[f"{name}_max_rss_mb"] = round(bench["max_rss_mb"], 1)
    return row


def build_summary(points: Sequence[GridPoint]) -> pd.DataFrame:
    rows = [summary_row(p) for p in points]
    return pd.DataFrame(rows).sort_values(["tissue", "chunk"], kind="stable").reset_index(drop=True)


def remote_table(points: Sequence[GridPoint]) -> pd.DataFrame:
    """All remote measurements, long: tissue, chunk, chunk unit, pattern, how they were
    measured (backend, server, latency_ms, bandwidth_mbps), cells and genes read, requests,
    bytes, repeats and seconds (median, min, max of the cold reads)."""
    first = ["tissue", "chunk", "chunk_unit", "pattern"]
    frames = [
        pd.read_csv(p.remote, sep="\t").assign(tissue=p.tissue, chunk=p.chunk, chunk_unit=p.unit())
        for p in points
        if p.remote
    ]
    if not frames:
        measured = [f.name for f in fields(Measurement) if f.name != "pattern"]
        return pd.DataFrame(columns=[*first, *CONDITIONS, *measured])
    table = pd.concat(frames, ignore_index=True)
    return table[first + [c for c in table.columns if c not in first]]
