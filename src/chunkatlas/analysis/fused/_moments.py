"""Pass 2 and the HVGs: per-gene moments of the normalised, log1p'd values (seurat,
cell_ranger; of X as stored where it is normalised already), per batch with batches, and the
HVG table from them; seurat_v3's flavors select on the counts (:mod:`._count_moments`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from chunkatlas.analysis._flavors import selects_on_counts
from chunkatlas.analysis._metering import STEP_MOMENTS, STEP_MOMENTS_AGAIN
from chunkatlas.analysis.fused._context import PassContext, gather_rows, scales
from chunkatlas.analysis.fused._count_moments import select_hvgs_v3
from chunkatlas.analysis.fused._hvg import (
    batch_mean_var,
    batched_dispersion_columns,
    dispersion_columns,
    mean_var,
)
from chunkatlas.analysis.fused._library import library_scale, library_sizes
from chunkatlas.analysis.fused._plan import LIBRARY_COLUMN, work_dtype
from chunkatlas.analysis.fused._tasks import task_moments

if TYPE_CHECKING:  # the workers never import pandas or scipy.sparse: they start faster
    import pandas as pd


log = logging.getLogger(__name__)


def select_hvgs(
    ctx: PassContext, flavor: str, n_top_genes: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Passes 1 and 2: the HVG table, per-cell scale and per-gene stored counts.  Where the
    store's obs records each cell's library size (``raw_sum``), seurat and cell_ranger skip
    pass 1: pass 2 computes the row sums anyway and, should they differ, runs again with
    them."""
    if selects_on_counts(flavor):
        return select_hvgs_v3(ctx, flavor, n_top_genes)
    n_obs = ctx.stored_x.n_obs
    if ctx.normalized:  # X as stored: seurat's statistics on its expm1, as scanpy's
        scale = np.ones(n_obs, dtype=work_dtype(ctx.stored_x.dtype))
        kind = "expm1" if flavor == "seurat" else "identity"
        _, *moments = moments_pass(ctx, scale, kind, STEP_MOMENTS)
    else:
        library = library_sizes(ctx)
        library, moments = normalised_moments(ctx, library, flavor)
        scale = library_scale(library, work_dtype(ctx.stored_x.dtype))
    if ctx.batches is None:
        sums, squares, stored = moments
        mean, var = mean_var(sums, squares, n_obs)
        return dispersion_columns(mean[None], var[None], flavor, n_top_genes), scale, stored
    sums, squares, positive = moments[0]
    mean, var = batch_mean_var(sums, squares, ctx.batches.sizes)
    table = batched_dispersion_columns(
        mean, var, positive > 0, flavor, n_top_genes, ctx.batches.gene_name_order
    )
    return table, scale, positive.sum(axis=0)


def normalised_moments(ctx: PassContext, library: np.ndarray, flavor: str) -> tuple:
    """Pass 2 (seurat, cell_ranger) with ``library``: the library sizes it checked, and the
    per-gene sums, sums of squares and stored counts (with batches: one list of per-batch sums,
    squares and positive counts).  Should X's row sums differ from the library sizes obs
    recorded, pass 2 runs again with X's own."""
    kind = "log1p_expm1" if flavor == "seurat" else "log1p"
    step = STEP_MOMENTS
    while True:
        scale = library_scale(library, work_dtype(ctx.stored_x.dtype))
        own, *moments = moments_pass(ctx, scale, kind, step)
        if np.array_equal(own, library):
            return library, moments
        first = int(np.flatnonzero(own != library)[0])
        log.warning(
            "obs %r of cell %d is %r, X's row sum %r: pass 2 again with X's own library sizes",
            LIBRARY_COLUMN,
            first,
            library[first],
            own[first],
        )
        library, step = own, STEP_MOMENTS_AGAIN


def moments_pass(ctx: PassContext, scale: np.ndarray, kind: str, step: str) -> tuple:
    """One pass 2: each cell's row sum and per-gene moments of the values divided by ``scale``
    (:func:`library_scale`) and transformed (``kind``: log1p'd, or as they are where X is
    already normalised)."""
    what = "X as stored" if ctx.normalized else "the normalised values"
    with ctx.costs.step(step, f"pass 2: moments of {what}, {kind}"):
        futures = ctx.map(
            task_moments,
            scales(scale, ctx.blocks),
            ctx.block_batches,
            kind=kind,
            n_vars=ctx.stored_x.n_vars,
        )
        return gather_rows(
            futures,
            ctx.blocks,
            ctx.stored_x,
            integers=not ctx.normalized,
            n_batches=ctx.n_batches,
        )
