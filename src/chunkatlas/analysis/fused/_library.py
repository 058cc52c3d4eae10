"""Pass 1 of seurat and cell_ranger: each cell's library size, and the per-cell divisor of
normalize_total it gives."""

from __future__ import annotations

import logging

import numpy as np

from chunkatlas.analysis._metering import STEP_LIBRARY_SIZES
from chunkatlas.analysis.fused._context import PassContext, gather_rows
from chunkatlas.analysis.fused._plan import LIBRARY_COLUMN
from chunkatlas.analysis.fused._tasks import task_library_sizes
from chunkatlas.errors import ChunkatlasError

log = logging.getLogger(__name__)


def library_scale(library: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Per-cell divisor of normalize_total(target_sum=None): size / the median size of the cells
    with counts (scanpy 1.12 leaves empty cells out of the median), in X's float type, 1 for
    empty cells (scanpy's in-memory arithmetic)."""
    counts = library.astype(dtype)
    with_counts = counts[counts > 0]
    if not with_counts.size:
        raise ChunkatlasError("no cell has counts: X holds only zeros")
    target = np.median(with_counts)
    scale = counts / target
    return scale + (scale == 0)


def library_sizes(ctx: PassContext) -> np.ndarray:
    """Pass 1 (seurat, cell_ranger): each cell's library size, which normalize_total's target
    (their median) needs before any normalised value; none when the store's obs records them."""
    recorded = ctx.stored_x.library
    if recorded is not None:  # no pass for what the store records; pass 2 checks it
        log.info("library sizes: obs %r of the store (checked in pass 2)", LIBRARY_COLUMN)
        return recorded
    with ctx.costs.step(STEP_LIBRARY_SIZES, "pass 1"):
        futures = ctx.map(task_library_sizes)
        (library,) = gather_rows(futures, ctx.blocks, ctx.stored_x, integers=True)
    return library
