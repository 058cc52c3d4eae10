"""One table row per tissue x chunk size, from manifests, results and benchmark files."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anndata as ad
import pandas as pd

from chunkatlas.consolidate import load_manifest

STEPS = ("fetch", "rechunk", "consolidate", "analyze", "remote")


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


def summary_row(point: GridPoint) -> dict[str, object]:
    manifest = load_manifest(point.manifest)
    result = ad.read_zarr(point.result)
    row: dict[str, object] = {
        "tissue": point.tissue,
        "chunk": point.chunk,
        "n_obs": manifest["n_obs"],
        "n_vars": manifest["n_vars"],
        "nnz": manifest["x_nnz"],
        "store_bytes": manifest["stored_bytes"],
        "n_hvg": int(result.var["highly_variable"].sum()),
    }
    if point.remote:
        for entry in pd.read_csv(point.remote, sep="\t").itertuples():
            for metric in ("requests", "bytes", "seconds"):
                row[f"{entry.pattern}_{metric}"] = getattr(entry, metric)
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
    """All remote measurements, long: tissue, chunk, pattern, server, requests, bytes, seconds."""
    frames = [
        pd.read_csv(p.remote, sep="\t").assign(tissue=p.tissue, chunk=p.chunk)
        for p in points
        if p.remote
    ]
    if not frames:
        return pd.DataFrame(
            columns=["tissue", "chunk", "pattern", "server", "requests", "bytes", "seconds"]
        )
    table = pd.concat(frames, ignore_index=True)
    first = ["tissue", "chunk", "pattern"]
    return table[first + [c for c in table.columns if c not in first]]
