"""Running the workflow from tests: the repository root and snakemake in a work directory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from chunkatlas.rewrite._geometry import DEFAULT_CODEC

REPO = Path(__file__).resolve().parents[1]

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` (its results/ goes there)."""
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
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


def geometries(config: dict):
    """(tissue, chunk, shard, codec) of every store a run of ``config`` writes."""
    for tissue in config["tissues"]:
        for chunk in config["chunks"]:
            for shard in config.get("shards", [1]):
                for codec in config.get("codecs", [DEFAULT_CODEC]):
                    yield tissue, chunk, shard, codec


def store_dir(tissue: str, chunk: int, shard: int = 1, codec: str = DEFAULT_CODEC) -> str:
    """The folder of one store inside results/RUN/ (the workflow names every geometry part)."""
    return f"{tissue}/chunks-{chunk}-shard-{shard}-{codec}"
