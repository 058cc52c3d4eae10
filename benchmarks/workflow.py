"""Wall time, CPU and peak memory of one whole workflow run.

    python benchmarks/workflow.py [SNAKEMAKE ARGS ...]      # default: --cores 2

Runs ``snakemake`` in the current directory and samples the memory of its process tree (every
job and Dask worker) as ``hvg_pca.py`` does: RSS every 50 ms, PSS and the process list every
0.5 s.  Start from a fresh clone (or remove results/ and .snakemake/) to time the whole grid.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hvg_pca import measure  # noqa: E402


def main() -> None:
    args = sys.argv[1:] or ["--cores", "2"]
    run = measure("workflow", [sys.executable, "-m", "snakemake", *args])
    print(
        f"snakemake {' '.join(args)}: exit {run.returncode}, wall {run.seconds:.1f} s, "
        f"CPU {run.cpu_seconds:.1f} s, peak RSS {run.peak_rss_mb:,.0f} MB, "
        f"peak PSS {run.peak_pss_mb:,.0f} MB"
    )
    sys.exit(run.returncode)


if __name__ == "__main__":
    main()
