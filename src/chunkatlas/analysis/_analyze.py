"""normalize_total, log1p, highly-variable genes and PCA, out of core on Dask.

Two engines compute the same results: ``fused`` (the default; chunkatlas.analysis.fused reads X
in tasks aligned with its chunks, in two to four passes) and ``scanpy`` (scanpy's own Dask code
paths on the lazily read store, four passes; kept for comparison).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from chunkatlas._schema import default_field
from chunkatlas.analysis._batches import Batches, read_batches
from chunkatlas.analysis._checks import check_counts, check_counts_sample
from chunkatlas.analysis._client import ClusterSettings, dask_client
from chunkatlas.analysis._flavors import (
    engine_flavor_problem,
    normalized_flavor_problem,
    selects_on_counts,
)
from chunkatlas.analysis._metering import (
    STEP_CHECK_COUNTS,
    STEP_HIGHLY_VARIABLE_GENES,
    STEP_LOG1P,
    STEP_NORMALIZE_TOTAL,
    STEP_OPEN,
    STEP_PCA,
    StepMeter,
)
from chunkatlas.analysis._task_cells import check_task_cells
from chunkatlas.analysis._uns import analysis_provenance, analysis_uns
from chunkatlas.analysis.fused import bins_explained
from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import (
    DEFAULT_ZARR_FORMAT,
    PART_BYTES,
    RemoteSettings,
    StoreLocation,
    new_zarr_store,
    open_on_workers,
    refuse_existing,
    take_reads,
)

if TYPE_CHECKING:
    import anndata as ad

    from chunkatlas.ingest import SourceFacts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysisParams:
    """What to compute and how: HVG flavor and count, number of principal components, engine,
    batches, and whether X is already normalised (``normalized``: no normalize_total or log1p;
    else X must hold raw counts)."""

    flavor: str = default_field("analysis.flavor")
    n_top_genes: int = default_field("analysis.n_top_genes")
    n_comps: int = default_field("analysis.n_comps")
    engine: str = default_field("analysis.engine")
    batch_key: str | None = default_field("analysis.batch_key")
    normalized: bool = default_field("analysis.normalized")

    def check(
        self, n_obs: int | None, n_vars: int, *, where: str = "", name_keys: bool = False
    ) -> None:
        """Refuse parameters the data (``n_obs`` cells, None: not known, of ``n_vars`` genes,
        in ``where``) cannot support, before any heavy work.  ``name_keys``: the messages name
        the config keys (the workflow's checks before any job, :meth:`check_data`)."""

        def name(key: str) -> str:
            return f"config analysis.{key}:" if name_keys else key

        of = f" of {where}" if where else ""
        problem = engine_flavor_problem(self.engine, self.flavor)
        if problem:
            raise ChunkatlasError(problem)
        problem = normalized_flavor_problem(self.flavor, self.normalized)
        if problem:
            raise ChunkatlasError(f"{name('flavor')} {problem}")
        if not 1 <= self.n_top_genes <= n_vars:
            raise ChunkatlasError(
                f"{name('n_top_genes')} {self.n_top_genes} must be between 1 and n_vars "
                f"({n_vars}){of}"
            )
        if selects_on_counts(self.flavor) and importlib.util.find_spec("skmisc") is None:
            raise ChunkatlasError(
                f"HVG flavor {self.flavor} needs scikit-misc: pip install scikit-misc"
            )
        limit = self.n_top_genes if n_obs is None else min(n_obs, self.n_top_genes)
        if not 1 <= self.n_comps < limit:
            raise ChunkatlasError(
                f"{name('n_comps')} {self.n_comps} must be below min(n_obs, n_top_genes) = "
                f"{limit}{of}"
            )

    def check_data(self, facts: SourceFacts, *, label_key: str | None = None) -> None:
        """Every check of these parameters that a source's metadata allows (``facts``, from
        :func:`chunkatlas.ingest.inspect_source`: its genes, the cells of each tissue, its obs
        columns, a sample of X's stored values), before any job; ``label_key`` is the obs
        column that colours the PCA plot.  One line each, naming the config key."""
        self.check(facts.fewest_cells, facts.n_vars, where=facts.described, name_keys=True)
        for key, column in (("batch_key", self.batch_key), ("label_key", label_key)):
            if column is not None and column not in facts.obs_columns:
                raise ChunkatlasError(
                    f"config analysis.{key}: {column!r} is not an obs column of {facts.where}; "
                    f"it has: {', '.join(facts.obs_columns) or 'none'}"
                )
        if facts.sample is not None:
            check_counts_sample(
                facts.sample,
                normalized=self.normalized,
                on_counts=selects_on_counts(self.flavor),
                where=facts.where,
                matrix=facts.matrix,
            )


def select_hvgs(adata: ad.AnnData, params: AnalysisParams, costs: StepMeter) -> None:
    """scanpy's highly_variable_genes, with its bin-edge failure said in one line."""
    import scanpy as sc

    detail = f"flavor {params.flavor}, n_top_genes {params.n_top_genes}"
    if params.batch_key is not None:
        detail += f", batch_key {params.batch_key}"
    with costs.step(STEP_HIGHLY_VARIABLE_GENES, detail), bins_explained(params.flavor):
        sc.pp.highly_variable_genes(
            adata,
            flavor=params.flavor,
            n_top_genes=params.n_top_genes,
            batch_key=params.batch_key,
        )


def hvg_pca(
    adata: ad.AnnData, params: AnalysisParams, costs: StepMeter | None = None
) -> ad.AnnData:
    """Run the scanpy pipeline on ``adata`` (in memory or Dask-backed) and return the results.

    The result has no X: obs, var with the highly-variable columns, obsm['X_pca'] (computed),
    varm['PCs'], uns['hvg'] and uns['pca'].  Each step's seconds and reads go into ``costs``.
    """
    import anndata as ad
    import scanpy as sc

    costs = costs or StepMeter()
    on_counts = selects_on_counts(params.flavor)  # its HVGs come from the raw counts
    if on_counts:
        select_hvgs(adata, params, costs)
    if not params.normalized:  # else X holds normalised, log1p'd values already
        with costs.step(STEP_NORMALIZE_TOTAL):
            sc.pp.normalize_total(adata)
        with costs.step(STEP_LOG1P):
            sc.pp.log1p(adata)
    if not on_counts:
        select_hvgs(adata, params, costs)
    with costs.step(STEP_PCA, f"n_comps {params.n_comps}, on the highly variable genes"):
        # On Dask, the covariance eigendecomposition (exact, n_hvg^2 memory) for dense X too,
        # as scanpy already does for sparse X: no dask-ml needed.
        solver = "covariance_eigh" if hasattr(adata.X, "dask") else None
        sc.pp.pca(adata, n_comps=params.n_comps, mask_var="highly_variable", svd_solver=solver)
        x_pca = adata.obsm["X_pca"]
        if hasattr(x_pca, "compute"):
            x_pca = x_pca.compute()
    return ad.AnnData(
        obs=adata.obs.copy(),
        var=adata.var.copy(),
        obsm={"X_pca": np.asarray(x_pca)},
        varm={"PCs": np.asarray(adata.varm["PCs"])},
        uns={"hvg": dict(adata.uns["hvg"]), "pca": dict(adata.uns["pca"])},
    )


def write_result(
    result: ad.AnnData, out: str | os.PathLike, zarr_format: int = DEFAULT_ZARR_FORMAT
) -> None:
    """Write the analysis result as a zarr store, atomically."""
    from anndata.io import write_elem

    with new_zarr_store(out, zarr_format) as root:
        write_elem(root, "/", result)


def analyze_store(
    store: str | os.PathLike,
    out: str | os.PathLike,
    *,
    task_cells: int | None = None,
    params: AnalysisParams,
    cluster: ClusterSettings = ClusterSettings(),  # noqa: B008 - frozen, so safe to share
    provenance: dict | None = None,
    zarr_format: int = DEFAULT_ZARR_FORMAT,
    remote: RemoteSettings | None = None,
) -> ad.AnnData:
    """Analyze the AnnData store ``store`` on Dask, ``task_cells`` cells per task, and write
    ``out``.

    ``store`` is a local path or an http(s)/s3 URL (read with ``remote``: retries, timeout,
    fsspec options).  Each worker opens the store itself and reads its own chunks.
    With ``params.engine == "fused"`` the result's ``obsm['X_pca']`` is a Dask array over
    ``out`` (the projection is streamed to disk); with ``"scanpy"`` it is in memory.
    X must hold counts: negative, non-finite and non-integer values are refused before any
    result is written; with ``params.normalized`` X holds normalised, log1p'd values instead
    (non-integers allowed), analysed as they are.  ``uns['chunkatlas']`` records the seconds and the
    reads (requests, bytes, retries) of every pass, and what the driver itself read.
    """
    refuse_existing(out)  # before the work, not after it
    if task_cells is None:
        raise ChunkatlasError("task_cells (cells per task) must be given")
    check_task_cells(task_cells)
    take_reads()  # the driver's reads from here on are this analysis's
    location = StoreLocation.of(store, remote).probed()
    if location.is_remote:  # one task's reads wait on the network while another computes
        cluster = replace(cluster, threads_per_worker=max(cluster.threads_per_worker, 2))
        if location.remote.part_bytes is None:  # large objects in ranges, together
            location = replace(location, remote=replace(location.remote, part_bytes=PART_BYTES))
    analysis = Analysis(location, out, task_cells, params, cluster, provenance, zarr_format)
    return analyze_fused(analysis) if params.engine == "fused" else analyze_scanpy(analysis)


@dataclass(frozen=True)
class Analysis:
    """One analysis as :func:`analyze_store` was asked for it, the store probed."""

    location: StoreLocation
    out: str | os.PathLike
    task_cells: int  # cells per Dask task
    params: AnalysisParams
    cluster: ClusterSettings
    provenance: dict | None
    zarr_format: int

    def checked_provenance(self, shape: tuple[int, int]) -> dict:
        """Refuse parameters the store's ``shape`` cannot support (before the cluster starts),
        say what will run, and return the provenance that ``uns['chunkatlas']`` begins with."""
        self.params.check(*shape)
        log.info(
            "store %s: %d cells x %d genes, %d cells per task, engine %s",
            self.location,
            *shape,
            self.task_cells,
            self.params.engine,
        )
        return analysis_provenance(
            self.location, self.cluster.kind, self.task_cells, self.params, self.provenance
        )

    def checked_batches(self) -> Batches | None:
        """The batches of ``params.batch_key`` read from the store and checked (None without
        one): a bad column is refused before the cluster starts."""
        if self.params.batch_key is None:
            return None
        batches = read_batches(self.location, self.params.batch_key, self.params.flavor)
        log.info("batch_key %r: %d batches", batches.key, len(batches.names))
        return batches


def analyze_fused(analysis: Analysis) -> ad.AnnData:
    """The fused engine: it writes ``analysis.out`` itself, the projection streamed into it."""
    from chunkatlas.analysis import fused

    stored_x = fused.open_stored_x(analysis.location)
    provenance = analysis.checked_provenance((stored_x.n_obs, stored_x.n_vars))
    batches = analysis.checked_batches()
    params = analysis.params
    with ThreadPoolExecutor(1) as pool:
        # obs, var and anndata's import while the cluster starts
        frames = pool.submit(fused.read_frames, analysis.location)
        # the new workers load numba as they start
        with dask_client(analysis.cluster, ("chunkatlas.analysis.fused",)) as client:
            return fused.run_fused(
                analysis.location,
                analysis.out,
                client=client,
                task_cells=analysis.task_cells,
                flavor=params.flavor,
                n_top_genes=params.n_top_genes,
                n_comps=params.n_comps,
                stored_x=stored_x,
                uns={"chunkatlas": provenance},
                frames=frames,
                zarr_format=analysis.zarr_format,
                batch_key=params.batch_key,
                batches=batches,
                normalized=params.normalized,
            )


def analyze_scanpy(analysis: Analysis) -> ad.AnnData:
    """The scanpy engine on the lazily read store; the result is written once computed."""
    from chunkatlas.store import read_dask_backed

    adata = read_dask_backed(analysis.location, analysis.task_cells)
    provenance = analysis.checked_provenance(adata.shape)
    analysis.checked_batches()
    with dask_client(analysis.cluster) as client:
        costs = StepMeter(client)
        with costs.step(STEP_OPEN, "each worker opens the store"):
            open_on_workers(client, analysis.location)
        with costs.step(STEP_CHECK_COUNTS):  # the fused engine checks in its first pass
            params = analysis.params
            check_counts(
                adata.X,
                integers=not params.normalized,
                where=analysis.location,
                on_counts=selects_on_counts(params.flavor),
            )
        result = hvg_pca(adata, analysis.params, costs)
        record = analysis_uns(costs, provenance)  # the workers' peaks: before they stop
    result.uns["chunkatlas"] = record
    write_result(result, analysis.out, analysis.zarr_format)
    return result


# Densities of the warm-up stores: below and above the fused engine's dense-Gram threshold, so
# both Gram kernels are compiled.
WARMUP_DENSITIES = (0.05, 0.5)


def warmup(params: AnalysisParams, zarr_format: int = DEFAULT_ZARR_FORMAT) -> dict[str, float]:
    """Analyse tiny synthetic count stores, written as the workflow writes stores, with the
    engine and flavor of ``params``: numba compiles the kernels and caches them on disk, so the
    timed analyses that follow do not pay the one-off compilation.  Returns seconds per store."""
    import tempfile
    import time

    import anndata as ad
    import scipy.sparse as sp
    from anndata.io import write_elem

    from chunkatlas.rewrite import rechunk_store

    batch_key = "batch" if params.batch_key else None  # compiles the per-batch kernels too
    tiny = AnalysisParams(
        flavor=params.flavor, n_top_genes=60, n_comps=5, engine=params.engine, batch_key=batch_key
    )
    rng = np.random.default_rng(0)
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="chunkatlas-warmup-") as tmp:
        for density in WARMUP_DENSITIES:
            counts = sp.random(400, 200, density=density, format="csr", rng=rng, dtype=np.float32)
            counts.data = np.ceil(counts.data * 10)
            written, store = f"{tmp}/written-{density}.zarr", f"{tmp}/counts-{density}.zarr"
            tiny_data = ad.AnnData(counts)
            tiny_data.obs["batch"] = np.repeat(["a", "b"], 200)
            with new_zarr_store(written, zarr_format) as root:
                write_elem(root, "/", tiny_data)
            # rechunked as the workflow's stores are: the kernels compile for their dtypes
            rechunk_store(written, store, 100, zarr_format=zarr_format)
            start = time.perf_counter()
            analyze_store(
                store,
                f"{tmp}/result-{density}.zarr",
                task_cells=100,
                params=tiny,
                cluster=ClusterSettings(shared_cluster=False),  # its own, never the run's
            )
            seconds[f"density {density}"] = round(time.perf_counter() - start, 2)
    return seconds
