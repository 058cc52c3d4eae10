"""The fused engine: normalize_total, log1p, highly-variable genes and PCA in few passes over X.

Stock scanpy on Dask passes over X four times through general-purpose sparse code.  This engine
reads X straight from the zarr store, in tasks aligned with the on-disk chunks of X's ``data``
and ``indices``, and runs numba kernels on the CSR pieces (a block is never densified across all
genes):

1. library sizes (reading ``data`` only), unless the store's obs records them (``raw_sum``, as
   the Census does); for ``seurat_v3`` also the moments of the raw counts;
2. per-gene moments of the normalised, log1p'd values (``seurat_v3``: the clipped count moments),
   and the row sums, which check library sizes taken from obs (a mismatch runs pass 2 again);
3. the Gram matrix of the highly-variable genes (a cache-tiled sparse kernel, or BLAS syrk on
   densified HVG rows when they are dense); each worker keeps its blocks' HVG values, in memory
   up to its share of ``keep_budget_mb`` and past it on its local disk (:mod:`._stash`);
4. the projection onto the principal components from the kept values (X is not decoded a third
   time), streamed into the result store in row order: memory is flat in the number of cells.

Library sizes come first because normalize_total's target is the median library size over all
cells with counts, known only after a full pass, and the log1p'd moments do not factor it out.

Results are those of in-memory scanpy 1.12.4 on the same store (scanpy 1.12 changed one formula
here: the median library size leaves out cells without counts, ``_compute_nnz_median``): every
stored value goes through the same float32 operations (library sizes summed in float64 and
rounded to X's float type, the same division, numpy's log1p and expm1, squares in X's float
type, sums in float64); the HVG
statistics use scanpy's formulas, binning, 1e-12 substitution and NaN handling; seurat_v3 fits the
same loess (scikit-misc) and clips as scanpy does.  The PCA is the eigendecomposition of the
covariance of the HVGs (accumulated in float64) with sklearn's sign convention (the largest
loading of each component is positive) and explained variances with ddof=1, as sklearn's PCA.

With a batch key (an obs column, read once by the driver and sent to the tasks as small codes),
pass 2 takes the moments per batch and gene instead of per gene (a task holds a row of sums for
each batch among its cells), and the HVG statistics are scanpy's per batch, merged as scanpy
merges them; seurat_v3 then runs one task per batch through its cells in row order, carrying
scanpy's Welford recurrence, so that its per-batch loess fits see scanpy's values bit for bit.

A store's rows that fall on a task boundary are split between two tasks; every per-cell quantity
(library size, projection) is a sum over the row's stored values, so the parts add up exactly.

The package, on scanpy's ``preprocessing/_pca`` model: :mod:`._plan` (the store's stored_x, the
tasks' blocks, reading a block), :mod:`._kernels` (numba kernels and scanpy-exact arithmetic),
:mod:`._tasks` (what workers run, one function per pass), :mod:`._hvg` (scanpy's HVG statistics),
:mod:`._pca` (eigenpairs of the covariance), :mod:`._stash` (HVG values kept between passes 3
and 4), the passes on the Dask cluster, one module a pass: :mod:`._library` (library sizes),
:mod:`._moments` (moments and HVGs; seurat_v3's on the counts in :mod:`._count_moments`),
:mod:`._gram` (the Gram matrix and the PCA) and :mod:`._projection`, what they share in
:mod:`._context` and their order in :mod:`._passes`; and :mod:`._driver` (:func:`run_fused`: a
store in, a result store out).  Importing this package loads neither numba nor pandas: Dask
workers start fast, and load numba through :func:`dask_setup`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chunkatlas._exports import lazy_exports

if TYPE_CHECKING:  # the public names, each imported on first use
    from chunkatlas.analysis.fused._driver import read_frames
    from chunkatlas.analysis.fused._driver import run_fused
    from chunkatlas.analysis.fused._hvg import bins_explained
    from chunkatlas.analysis.fused._plan import open_stored_x

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)


def dask_setup(worker) -> None:
    """Dask preload hook (``preload=["chunkatlas.analysis.fused"]``): load numba and pass 1's
    kernel while the worker starts (about 0.7 s a process), as the driver reads obs and var, instead
    of in the first pass."""
    import numpy as np

    from chunkatlas.analysis.fused._kernels import _row_sums

    _row_sums(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.float32))
