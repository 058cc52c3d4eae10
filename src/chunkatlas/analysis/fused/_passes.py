"""The passes over X on a Dask cluster, in order: library sizes (:mod:`._library`), moments and
HVGs (:mod:`._moments`; seurat_v3's on the counts: :mod:`._count_moments`), the Gram matrix and
the PCA (:mod:`._gram`), then the projection streamed in row order (:mod:`._projection`); what
they share is in :mod:`._context`.  Partial results are added in submission order, so results
are identical from run to run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import zarr

from chunkatlas.analysis._flavors import FLAVORS
from chunkatlas.analysis._metering import STEP_OPEN, StepMeter
from chunkatlas.analysis.fused._context import PassContext
from chunkatlas.analysis.fused._gram import KEEP_MB, KeptValues, fit_pca, gram_pass
from chunkatlas.analysis.fused._moments import select_hvgs
from chunkatlas.analysis.fused._pca import PcaFit
from chunkatlas.analysis.fused._plan import Block, StoredX
from chunkatlas.analysis.fused._projection import project_kept
from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import open_on_workers

if TYPE_CHECKING:  # the workers never import pandas or scipy.sparse: they start faster
    import numpy as np
    import pandas as pd

    from chunkatlas.analysis._batches import Batches


log = logging.getLogger(__name__)


@dataclass
class FusedResult:
    """What the passes computed, before the projection is written (:meth:`project`)."""

    var: pd.DataFrame
    hvg: np.ndarray
    fit: PcaFit
    costs: StepMeter
    kept: KeptValues

    def project(self, array: zarr.Array) -> None:
        """Pass 4 into ``array`` (n_obs x n_comps float32); then the workers drop the HVG
        values they kept."""
        project_kept(self.kept, self.fit, array)


def run_passes(
    client,
    stored_x: StoredX,
    blocks: list[Block],
    *,
    flavor: str,
    n_top_genes: int,
    n_comps: int,
    keep_budget_mb: float = KEEP_MB,
    batches: Batches | None = None,
    normalized: bool = False,
) -> FusedResult:
    """Passes 1-3 and the PCA on the cluster of ``client``; HVGs selected per batch of
    ``batches`` and merged (None: over all cells at once).  With ``normalized`` X holds
    normalised, log1p'd values, taken as they are (no pass 1); else it must hold counts.

    The result's :meth:`FusedResult.project` runs pass 4, streaming the projection into a zarr
    array of n_obs x n_comps float32, and then releases the HVG values kept on the workers.
    """
    if flavor not in FLAVORS:
        raise ChunkatlasError(f"HVG flavor {flavor!r} is not one of {', '.join(FLAVORS)}")
    ctx = PassContext(client, stored_x, blocks, StepMeter(client), batches, normalized)
    if batches is not None:
        check_batch_memory(ctx)
    with ctx.costs.step(STEP_OPEN, "each worker opens the store"):
        open_on_workers(client, stored_x.location)
    table, scale, stored = select_hvgs(ctx, flavor, n_top_genes)
    hvg = table["highly_variable"].to_numpy()
    width = int(hvg.sum())
    if n_comps >= width:
        raise ChunkatlasError(f"n_comps {n_comps} must be below the number of HVGs ({width})")
    gram, sums, kept = gram_pass(ctx, hvg, scale, stored, keep_budget_mb)
    fit = fit_pca(gram, sums, n_comps, kept)
    return FusedResult(table, hvg, fit, ctx.costs, kept)


#: Bytes a task holds per batch it meets and gene: sums and squares (float64) and positive
#: counts (int32), or in seurat_v3's second pass the clip values and two sums (float64); the
#: driver holds about as much again per batch and gene while it selects per batch.
BATCH_BYTES = 24
#: Share of a worker's memory limit a task's per-batch sums may take (the rest: its block of X).
BATCH_SHARE = 0.25


def check_batch_memory(ctx: PassContext) -> None:
    """Say what the per-batch moments weigh, and refuse before any pass when one task's would
    not fit in its share of a worker's memory: a task holds a row of sums per batch among its
    cells (few where cells are grouped by batch, as the Census's), the driver one per batch."""
    n_vars = ctx.stored_x.n_vars
    most = max((len(b.present) for b in ctx.block_batches), default=0)
    task_mb = most * n_vars * BATCH_BYTES / 2**20
    driver_mb = ctx.n_batches * n_vars * BATCH_BYTES / 2**20
    log.info(
        "batch_key %r: %d batches x %d genes; per-batch moments %.0f MB in the driver, at most "
        "%.1f MB in a task (its cells span up to %d batches)",
        ctx.batches.key,
        ctx.n_batches,
        n_vars,
        driver_mb,
        task_mb,
        most,
    )
    limits = [w.get("memory_limit") or 0 for w in ctx.client.scheduler_info()["workers"].values()]
    limit_mb = min(limits, default=0) / 2**20
    if limit_mb and task_mb > BATCH_SHARE * limit_mb:
        raise ChunkatlasError(
            f"batch_key {ctx.batches.key!r}: a task's cells span {most} of the "
            f"{ctx.n_batches} batches, whose per-batch moments ({task_mb:.0f} MB) exceed "
            f"{BATCH_SHARE:.0%} of a worker's {limit_mb:.0f} MB; give the workers more memory, "
            "fewer cells per task (--task-cells), or a store whose cells are grouped by batch"
        )
