"""Running the workflow from tests: the repository root and snakemake in a work directory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from chunkatlas.rewrite import DEFAULT_CODEC

REPO = Path(__file__).resolve().parents[2]

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def snakemake(
    workdir: Path, *args: str, timeout: int = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` (its results/ goes there)."""
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def results_dir(workdir: Path, config: dict) -> Path:
    """Where a run of ``config`` in ``workdir`` writes: results/RUN."""
    return workdir / "results" / config["run"]


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's "Job stats" table: jobs per rule."""
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return {
        m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"
    }


def stores(config: dict):
    """(tissue, orientation, chunk, shard, codec) of every store a run of ``config`` writes."""
    chunks = {"cells": config["chunks"], "genes": config.get("gene_chunks", [50])}
    for tissue in config["tissues"]:
        for orientation in config.get("orientations", ["cells"]):
            for chunk in chunks[orientation]:
                for shard in config.get("shards", [1]):
                    for codec in config.get("codecs", [DEFAULT_CODEC]):
                        yield tissue, orientation, chunk, shard, codec


def geometries(config: dict):
    """The stores a run of ``config`` analyses: cell-major ones, and gene-major ones of dense X
    (analysis reads a gene-major sparse store's cells across every object: it is measured
    only)."""
    dense = config.get("source", {}).get("dense", False)
    for store in stores(config):
        if store[1] == "cells" or dense:
            yield store


def store_dir(
    tissue: str, orientation: str, chunk: int, shard: int = 1, codec: str = DEFAULT_CODEC
) -> str:
    """The folder of one store inside results/RUN/ (the workflow names every geometry part)."""
    return f"{tissue}/{orientation}-{chunk}-shard-{shard}-{codec}"


def one_tissue_config(folder: Path) -> tuple[Path, dict]:
    """config/test.yaml for its first tissue alone, written in ``folder``: (path, config).  Its
    stores and results are the full run's of that tissue (same run name), at half the jobs."""
    import yaml

    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    config["tissues"] = config["tissues"][:1]
    path = folder / "one-tissue.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, config
