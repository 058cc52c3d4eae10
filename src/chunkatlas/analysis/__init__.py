"""normalize_total, log1p, highly-variable genes and PCA out of core: the two engines
(:mod:`._analyze`; the fused engine in :mod:`.fused`), the counts checks (:mod:`._checks`), the
steps' names and what each step and pass costs (:mod:`._metering`), what an analysis records of
itself in ``uns['chunkatlas']`` (:mod:`._uns`), and the Dask cluster an analysis runs on: a
client for each kind of cluster (:mod:`._client`) and the one LocalCluster a workflow run's
analyze jobs share (:mod:`._shared_cluster`); the engines and HVG flavors (:mod:`._flavors`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chunkatlas._exports import lazy_exports

if TYPE_CHECKING:  # the public names, each imported on first use
    from chunkatlas.analysis._analyze import AnalysisParams
    from chunkatlas.analysis._analyze import analyze_store
    from chunkatlas.analysis._analyze import hvg_pca
    from chunkatlas.analysis._analyze import warmup
    from chunkatlas.analysis._analyze import write_result
    from chunkatlas.analysis._client import ClusterSettings
    from chunkatlas.analysis._client import SlurmOptions
    from chunkatlas.analysis._flavors import engine_flavor_problem
    from chunkatlas.analysis._flavors import ENGINES
    from chunkatlas.analysis._flavors import FLAVORS
    from chunkatlas.analysis._flavors import normalized_flavor_problem
    from chunkatlas.analysis._flavors import selects_on_counts
    from chunkatlas.analysis._client import dask_client
    from chunkatlas.analysis._metering import FUSED_STEPS
    from chunkatlas.analysis._metering import MEASURES
    from chunkatlas.analysis._metering import SCANPY_STEPS
    from chunkatlas.analysis._metering import STEP_CHECK_COUNTS
    from chunkatlas.analysis._metering import STEP_CLIPPED_MOMENTS
    from chunkatlas.analysis._metering import STEP_COUNT_MOMENTS
    from chunkatlas.analysis._metering import STEP_EIGH
    from chunkatlas.analysis._metering import STEP_GRAM
    from chunkatlas.analysis._metering import STEP_HIGHLY_VARIABLE_GENES
    from chunkatlas.analysis._metering import STEP_LIBRARY_SIZES
    from chunkatlas.analysis._metering import STEP_LOESS
    from chunkatlas.analysis._metering import STEP_LOG1P
    from chunkatlas.analysis._metering import STEP_MOMENTS
    from chunkatlas.analysis._metering import STEP_MOMENTS_AGAIN
    from chunkatlas.analysis._metering import STEP_NORMALIZE_TOTAL
    from chunkatlas.analysis._metering import STEP_OPEN
    from chunkatlas.analysis._metering import STEP_PCA
    from chunkatlas.analysis._metering import STEP_PROJECTION
    from chunkatlas.analysis._shared_cluster import close_run
    from chunkatlas.analysis._shared_cluster import open_run

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
