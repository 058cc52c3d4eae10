"""A workflow run's shared Dask clusters: kept under the working directory's ``.snakemake/``,
opened by the Snakefile's ``onstart`` and closed when the run ends (the mechanism, slots and
services, is :mod:`chunkatlas.analysis`'s; where a Snakemake run keeps them is this)."""

from __future__ import annotations

import os
from pathlib import Path

#: Where a Snakemake run keeps its clusters, inside its working directory.
CLUSTERS = Path(".snakemake") / "chunkatlas-clusters"


def open_run_clusters(workdir: str | os.PathLike = ".") -> Path:
    """Open this snakemake process's folder of shared clusters (:func:`analysis.open_run`)."""
    from chunkatlas.analysis import open_run

    return open_run(Path(workdir) / CLUSTERS)


def close_run_clusters() -> None:
    """Stop every cluster of this run (:func:`analysis.close_run`)."""
    from chunkatlas.analysis import close_run

    close_run()
