"""How long small runs take: the default run, and a 3,000-cell AnnData of one's own through the
same grid, each from an empty working directory.

    python -m benchmarks.small_runs [--cores 2]

The AnnData is 3,000 cells of the default run's lung, written as an ``.h5ad`` (what a user
brings); its config is the default one with that file as the source.  Prints each run's wall
seconds and jobs, then each rule's jobs, job-seconds (Snakemake's benchmark files) and median
seconds: where a small run's time goes.  Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
OWN_CELLS = 3_000


def run(workdir: Path, cores: int, *args: str) -> float:
    """Wall seconds of one Snakemake run in ``workdir``."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
        + ["--cores", str(cores), "-q", *args],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"the run in {workdir} failed:\n{done.stderr[-3000:]}")
    return seconds


def job_seconds(results: Path) -> pd.DataFrame:
    """Jobs, job-seconds and median seconds per rule, from the run's benchmark files."""
    per_rule = collections.defaultdict(list)
    for path in (results / "benchmarks").rglob("*.tsv"):
        rule = path.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv")
        per_rule[rule].append(float(pd.read_csv(path, sep="\t")["s"].iloc[0]))
    rows = [
        dict(rule=r, jobs=len(s), seconds=round(sum(s), 1), median=round(statistics.median(s), 1))
        for r, s in per_rule.items()
    ]
    return pd.DataFrame(rows).sort_values("seconds", ascending=False)


def own_config(default_results: Path, where: Path) -> Path:
    """The default config with 3,000 cells of the default run's lung as the source."""
    lung = ad.read_zarr(default_results / "lung" / "fetched.zarr")
    cells = np.sort(np.random.default_rng(0).choice(lung.n_obs, OWN_CELLS, replace=False))
    lung[cells].copy().write_h5ad(where / "own.h5ad")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.pop("demo_atlas")
    config.update(run="own", tissues=["own"])
    config["source"] = {"kind": "anndata", "uri": str(where / "own.h5ad")}
    (where / "own.yaml").write_text(yaml.safe_dump(config))
    return where / "own.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    cores = parser.parse_args().cores
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        default, own = scratch / "default", scratch / "own"
        seconds = run(default, cores)
        config = own_config(default / "results" / "demo", scratch)
        own_seconds = run(own, cores, "--configfile", str(config))
        for name, wall, results in (
            ("default run", seconds, default / "results" / "demo"),
            (f"{OWN_CELLS:,}-cell AnnData", own_seconds, own / "results" / "own"),
        ):
            table = job_seconds(results)
            print(f"{name}: {wall:.0f} s wall on {cores} cores")
            print(table.to_string(index=False), end="\n\n")


if __name__ == "__main__":
    main()
