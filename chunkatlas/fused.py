"""The fused engine: normalize_total, log1p, highly-variable genes and PCA in few passes over X.

Stock scanpy on Dask passes over X four times through general-purpose sparse code.  This engine
reads X straight from the zarr store, in tasks aligned with the on-disk chunks of X's ``data``
and ``indices``, and runs numba kernels on the CSR pieces (a chunk is never densified across all
genes):

1. library sizes (reading ``data`` only); for ``seurat_v3`` also the moments of the raw counts;
2. per-gene moments of the normalised, log1p'd values (``seurat_v3``: the clipped count moments);
3. the Gram matrix of the highly-variable genes (a cache-tiled sparse kernel, or BLAS syrk on
   densified HVG rows when they are dense), keeping the HVG values of as many tasks as fit
   ``keep_mb`` on the workers;
4. the projection onto the principal components (from the kept values; other tasks read X once
   more), streamed into the result store in row order: memory is flat in the number of cells.

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

A store's rows that fall on a task boundary are split between two tasks; every per-cell quantity
(library size, projection) is a sum over the row's stored values, so the parts add up exactly.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import zarr

from chunkatlas.checks import block_problems, refuse_problems
from chunkatlas.config import FLAVORS as CONFIG_FLAVORS
from chunkatlas.errors import ChunkatlasError
from chunkatlas.logs import timed
from chunkatlas.stores import open_anndata_group

if TYPE_CHECKING:  # the workers never import pandas or scipy.sparse: they start faster
    import pandas as pd

log = logging.getLogger(__name__)

FLAVORS = CONFIG_FLAVORS["fused"]
#: Stored integer counts 1..TABLE_COUNTS are normalised through a per-cell table of values.
TABLE_COUNTS = 32
#: Above this share of non-zero HVG values a task accumulates the Gram matrix with dense BLAS.
DENSE_GRAM_DENSITY = 0.15
#: Columns per tile of the sparse Gram kernel (a 256 x 256 float64 tile is 512 KiB: in cache).
GRAM_TILE = 256
#: Rows densified at once by the dense Gram path (a block is DENSE_BLOCK_ROWS x n_top_genes).
DENSE_BLOCK_ROWS = 1024
#: Stored values normalised at once in pass 2 (bounds a task's temporaries).
MOMENT_BATCH = 1 << 21
#: Default memory (all workers together) for keeping the HVG values between Gram and projection.
KEEP_MB = 128
#: scanpy's number of mean-expression bins for flavor seurat.
N_BINS = 20
#: scanpy's loess span for seurat_v3.
SPAN = 0.3


# --------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class Layout:
    """Where X lives and how it is stored: what planning tasks needs to know."""

    path: str
    n_obs: int
    n_vars: int
    sparse: bool
    dtype: np.dtype
    nnz: int = 0
    data_chunk: int = 0
    indptr: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, eq=False)
class Block:
    """One task's share of X: rows ``[row_start, row_stop)`` and, for CSR, stored values
    ``[entry_start, entry_stop)`` with ``row_ptr`` the row offsets into them.  Its first and last
    rows may hold only part of their values (``first_partial``, ``last_partial``); the rest are in
    the neighbouring blocks."""

    row_start: int
    row_stop: int
    entry_start: int | None = None
    entry_stop: int | None = None
    row_ptr: np.ndarray | None = field(default=None, repr=False)
    first_partial: bool = False
    last_partial: bool = False

    def whole_rows(self) -> tuple[int, int]:
        """Local range of the rows whose values all lie in this block."""
        n = self.row_stop - self.row_start
        first = 1 if self.first_partial else 0
        return min(first, n), max(first, n - 1 if self.last_partial else n)

    def partial_rows(self) -> list[int]:
        """Local indices of the rows shared with a neighbouring block."""
        n = self.row_stop - self.row_start
        rows = ([0] if self.first_partial else []) + ([n - 1] if self.last_partial else [])
        return sorted(set(rows))


def open_layout(store: str | os.PathLike) -> Layout:
    """Describe X of the AnnData store ``store`` (CSR or dense), reading only its indptr."""
    group = open_anndata_group(store)
    x = group["X"]
    if isinstance(x, zarr.Array):
        n_obs, n_vars = x.shape
        return Layout(str(store), int(n_obs), int(n_vars), False, np.dtype(x.dtype))
    encoding = x.attrs.get("encoding-type")
    if encoding != "csr_matrix":
        raise ChunkatlasError(
            f"the fused engine reads X stored as csr_matrix or dense, not {encoding!r}; "
            "use engine 'scanpy'"
        )
    n_obs, n_vars = (int(n) for n in x.attrs["shape"])
    indptr = np.asarray(x["indptr"][:], dtype=np.int64)
    return Layout(
        str(store),
        n_obs,
        n_vars,
        True,
        np.dtype(x["data"].dtype),
        nnz=int(indptr[-1]),
        data_chunk=int(x["data"].chunks[0]),
        indptr=indptr,
    )


def entry_bounds(nnz: int, target: int, chunk: int) -> np.ndarray:
    """Task boundaries over ``nnz`` stored values: about ``target`` values per task, at chunk
    boundaries (whole chunks per task, or each chunk split evenly when chunks exceed target)."""
    if nnz == 0:
        return np.array([0, 0], dtype=np.int64)
    chunk = max(1, min(chunk, nnz))
    target = max(1, target)
    if chunk <= target:
        step = chunk * max(1, round(target / chunk))
        bounds = np.arange(0, nnz, step, dtype=np.int64)
    else:
        parts = max(1, round(chunk / target))
        starts = np.arange(0, nnz, chunk, dtype=np.int64)
        offsets = np.round(np.arange(parts) * chunk / parts).astype(np.int64)
        bounds = np.unique((starts[:, None] + offsets[None, :]).ravel())
        bounds = bounds[bounds < nnz]
    return np.append(bounds, nnz)


def plan_blocks(layout: Layout, rows: int) -> list[Block]:
    """Split X into tasks of about ``rows`` cells, aligned with the on-disk chunks of CSR data."""
    if rows < 1:
        raise ChunkatlasError(f"chunk (rows per task) must be a positive integer, got {rows}")
    if not layout.sparse:
        return [Block(lo, min(lo + rows, layout.n_obs)) for lo in range(0, layout.n_obs, rows)]
    indptr = layout.indptr
    target = round(rows * layout.nnz / max(layout.n_obs, 1))
    bounds = entry_bounds(layout.nnz, target, layout.data_chunk)
    blocks = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi <= lo:
            continue
        first = int(np.searchsorted(indptr, lo, side="right")) - 1
        stop = int(np.searchsorted(indptr, hi, side="left"))
        row_ptr = np.clip(indptr[first : stop + 1], lo, hi) - lo
        blocks.append(
            Block(
                first,
                stop,
                int(lo),
                int(hi),
                row_ptr,
                first_partial=bool(indptr[first] < lo),
                last_partial=bool(indptr[stop] > hi),
            )
        )
    return blocks


@dataclass(frozen=True)
class Piece:
    """The CSR arrays of one block (``indices`` is None when only ``data`` was read)."""

    row_ptr: np.ndarray
    indices: np.ndarray | None
    data: np.ndarray


def read_piece(path: str, block: Block, *, indices: bool = True) -> Piece:
    """Read one block of X from the store at ``path`` (called on the workers)."""
    x = zarr.open_group(path, mode="r")["X"]
    if block.entry_start is None:
        import scipy.sparse as sp

        csr = sp.csr_matrix(np.asarray(x[block.row_start : block.row_stop]))
        return Piece(csr.indptr.astype(np.int64), csr.indices, csr.data)
    lo, hi = block.entry_start, block.entry_stop
    return Piece(block.row_ptr, x["indices"][lo:hi] if indices else None, x["data"][lo:hi])


def work_dtype(dtype: np.dtype) -> np.dtype:
    """The float type scanpy normalises in: X's own float type, float32 for integer counts."""
    return np.dtype(dtype) if np.issubdtype(dtype, np.floating) else np.dtype(np.float32)


# --------------------------------------------------------------------------- numba kernels


def dask_setup(worker) -> None:
    """Dask preload hook (``preload=["chunkatlas.fused"]``): load numba and pass 1's kernel
    while the worker starts (about 0.7 s a process), as the driver reads obs and var, instead
    of in the first pass."""
    _row_sums(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.float32))


def jit(func: Callable) -> Callable:
    """``numba.njit(cache=True, nogil=True)`` applied at the first call: the driver imports this
    module but runs no kernel, so it never loads numba (and LLVM)."""
    compiled = None

    @functools.wraps(func)
    def call(*args):
        nonlocal compiled
        if compiled is None:
            import numba

            compiled = numba.njit(cache=True, nogil=True)(func)
        return compiled(*args)

    return call


@jit
def _row_sums(row_ptr, data):
    """Per-row sums accumulated in float64 (scanpy's library sizes before rounding)."""
    out = np.zeros(len(row_ptr) - 1, dtype=np.float64)
    for r in range(len(row_ptr) - 1):
        total = 0.0
        for j in range(row_ptr[r], row_ptr[r + 1]):
            total += data[j]
        out[r] = total
    return out


@jit
def _column_moments(indices, values, n_cols):
    """Per-column sums, sums of squares (squared in the values' type) and stored counts."""
    sums = np.zeros(n_cols, dtype=np.float64)
    squares = np.zeros(n_cols, dtype=np.float64)
    stored = np.zeros(n_cols, dtype=np.int64)
    for j in range(len(values)):
        c = indices[j]
        x = values[j]
        sums[c] += x
        squares[c] += x * x
        stored[c] += 1
    return sums, squares, stored


@jit
def _clipped_moments(indices, data, clip):
    """Per-column sums and squares of min(value, clip[column]) in float64 (seurat_v3)."""
    sums = np.zeros(len(clip), dtype=np.float64)
    squares = np.zeros(len(clip), dtype=np.float64)
    for j in range(len(data)):
        c = indices[j]
        x = min(np.float64(data[j]), clip[c])
        sums[c] += x
        squares[c] += x * x
    return sums, squares


@jit
def _fill_from_table(row_ptr, data, scale, table, values, slow):
    """values[j] = table[row, count - 1] for integer counts 1..table width; otherwise
    data[j] / scale[row], flagged in ``slow`` for the caller to transform."""
    width = table.shape[1]
    for r in range(len(row_ptr) - 1):
        s = scale[r]
        for j in range(row_ptr[r], row_ptr[r + 1]):
            x = data[j]
            if x >= 1 and x <= width and int(x) == x:
                values[j] = table[r, int(x) - 1]
            else:
                values[j] = x / s
                slow[j] = True


@jit
def _select_columns(row_ptr, indices, data, position):
    """The CSR sub-matrix of the columns with ``position >= 0``, renumbered to ``position``."""
    count = 0
    for j in range(len(indices)):
        if position[indices[j]] >= 0:
            count += 1
    out_ptr = np.zeros(len(row_ptr), dtype=np.int64)
    cols = np.empty(count, dtype=np.int32)
    vals = np.empty(count, dtype=data.dtype)
    k = 0
    for r in range(len(row_ptr) - 1):
        for j in range(row_ptr[r], row_ptr[r + 1]):
            p = position[indices[j]]
            if p >= 0:
                cols[k] = p
                vals[k] = data[j]
                k += 1
        out_ptr[r + 1] = k
    return out_ptr, cols, vals


@jit
def _sort_rows(row_ptr, cols, values):
    """Sort each row's columns (and values with them) in place, where they are not sorted."""
    for r in range(len(row_ptr) - 1):
        lo, hi = row_ptr[r], row_ptr[r + 1]
        for j in range(lo + 1, hi):
            if cols[j] < cols[j - 1]:
                order = np.argsort(cols[lo:hi], kind="mergesort")
                cols[lo:hi] = cols[lo:hi][order]
                values[lo:hi] = values[lo:hi][order]
                break


@jit
def _gram_sparse(row_ptr, cols, values, gram, tile):
    """Add every row's outer product to ``gram``, each pair of columns once (one triangle).

    Columns must be sorted within rows.  The matrix is updated one ``tile`` x ``tile`` block at
    a time (every row's values falling in that block), so the block being updated stays in cache.
    """
    n_rows = len(row_ptr) - 1
    n_tiles = (gram.shape[0] + tile - 1) // tile
    offsets = np.empty((n_rows, n_tiles + 1), dtype=np.int64)  # first value of a row in a tile
    for r in range(n_rows):
        j = row_ptr[r]
        for t in range(n_tiles):
            while j < row_ptr[r + 1] and cols[j] < t * tile:
                j += 1
            offsets[r, t] = j
        offsets[r, n_tiles] = row_ptr[r + 1]
    for ti in range(n_tiles):
        for tj in range(ti, n_tiles):
            for r in range(n_rows):
                b_stop = offsets[r, tj + 1]
                for a in range(offsets[r, ti], offsets[r, ti + 1]):
                    ca = cols[a]
                    va = np.float64(values[a])
                    for b in range(a if ti == tj else offsets[r, tj], b_stop):
                        gram[ca, cols[b]] += va * values[b]


@jit
def _project(row_ptr, cols, values, loadings):
    """Rows of a CSR matrix times ``loadings`` (float64)."""
    n_comps = loadings.shape[1]
    out = np.zeros((len(row_ptr) - 1, n_comps), dtype=np.float64)
    for r in range(len(row_ptr) - 1):
        for j in range(row_ptr[r], row_ptr[r + 1]):
            v = np.float64(values[j])
            c = cols[j]
            for k in range(n_comps):
                out[r, k] += v * loadings[c, k]
    return out


@jit
def _densify_rows(row_ptr, cols, values, start, out):
    """Write rows ``start .. start + len(out)`` of a CSR matrix into the zeroed ``out``."""
    for i in range(out.shape[0]):
        r = start + i
        for j in range(row_ptr[r], row_ptr[r + 1]):
            out[i, cols[j]] = values[j]


# --------------------------------------------------------------------------- compute on pieces


def transform(values: np.ndarray, kind: str) -> np.ndarray:
    """scanpy's element-wise steps after normalisation: log1p, then expm1 for ``log1p_expm1``
    (flavor seurat computes its statistics on expm1 of the log1p'd data)."""
    out = np.log1p(values)
    if kind == "log1p_expm1":
        np.expm1(out, out=out)
    return out


def normalized_values(
    row_ptr: np.ndarray, data: np.ndarray, scale: np.ndarray, kind: str
) -> np.ndarray:
    """transform(data / scale[row]) for every stored value, exactly as scanpy computes it.

    Integer counts up to TABLE_COUNTS take their value from a per-cell table computed with the
    same numpy operations, so the result is bit-identical at a fraction of the transcendental
    calls; other values are transformed one by one.
    """
    dtype = scale.dtype
    data = data.astype(dtype, copy=False)
    counts = np.arange(1, TABLE_COUNTS + 1, dtype=dtype)
    table = transform(counts[None, :] / scale[:, None], kind)
    values = np.empty(len(data), dtype=dtype)
    slow = np.zeros(len(data), dtype=np.bool_)
    _fill_from_table(row_ptr, data, scale, table, values, slow)
    where = np.flatnonzero(slow)
    if len(where):
        values[where] = transform(values[where], kind)
    return values


def gram_update(
    row_ptr: np.ndarray,
    cols: np.ndarray,
    values: np.ndarray,
    gram: np.ndarray,
    *,
    dense: bool | None = None,
) -> None:
    """Add X^T X of a CSR piece to ``gram`` (one triangle per pair; see :func:`symmetric`).

    Sparse pieces go through a tiled numba kernel (cost: squared non-zeros per row; columns
    must be sorted within rows); dense ones, or ``dense=True``, through BLAS syrk on blocks of
    DENSE_BLOCK_ROWS densified rows.
    """
    n_rows, width = len(row_ptr) - 1, gram.shape[0]
    if dense is None:
        dense = len(values) > DENSE_GRAM_DENSITY * max(n_rows, 1) * width
    if not dense:
        _gram_sparse(row_ptr, cols, values, gram, GRAM_TILE)
        return
    from scipy.linalg.blas import dsyrk

    target = gram.T  # Fortran-ordered view: BLAS updates it in place
    for start in range(0, n_rows, DENSE_BLOCK_ROWS):
        block = np.zeros((min(DENSE_BLOCK_ROWS, n_rows - start), width), dtype=np.float64)
        _densify_rows(row_ptr, cols, values, start, block)
        out = dsyrk(1.0, block.T, beta=1.0, c=target, trans=0, lower=0, overwrite_c=1)
        if not np.shares_memory(out, gram):
            target[...] = out


def symmetric(gram: np.ndarray, tile: int = 512) -> np.ndarray:
    """Make ``gram``, accumulated with each pair of columns in one triangle, the full symmetric
    matrix, in place (tile by tile: no n x n temporary); returns it."""
    width = gram.shape[0]
    for i in range(0, width, tile):
        for j in range(i, width, tile):
            upper, lower = gram[i : i + tile, j : j + tile], gram[j : j + tile, i : i + tile]
            if i == j:
                diagonal = np.diag(upper).copy()
                upper += upper.T.copy()
                upper[np.diag_indices_from(upper)] = diagonal
            else:
                upper += lower.T
                lower[...] = upper.T
    return gram


# --------------------------------------------------------------------------- worker tasks


@dataclass(frozen=True)
class Kept:
    """The HVG values of one block: CSR with columns numbered among the HVGs."""

    row_ptr: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.row_ptr.nbytes + self.cols.nbytes + self.values.nbytes


def task_library_sizes(path: str, block: Block) -> tuple:
    """Pass 1: the block's row sums (partial for a shared first or last row) and the counts of
    values that are not counts (:func:`chunkatlas.checks.block_problems`)."""
    piece = read_piece(path, block, indices=False)
    return _row_sums(piece.row_ptr, piece.data), block_problems(piece.data)


def task_count_moments(path: str, block: Block, n_vars: int) -> tuple:
    """Pass 1 of seurat_v3: as :func:`task_library_sizes`, and per-gene moments of the counts."""
    piece = read_piece(path, block)
    return (
        _row_sums(piece.row_ptr, piece.data),
        block_problems(piece.data),
        *_column_moments(piece.indices, piece.data, n_vars),
    )


def task_moments(path: str, block: Block, scale: np.ndarray, kind: str, n_vars: int) -> tuple:
    """Pass 2: per-gene sums, squares and stored counts of the normalised, transformed values."""
    piece = read_piece(path, block)
    totals = [np.zeros(n_vars), np.zeros(n_vars), np.zeros(n_vars, dtype=np.int64)]
    for lo, hi in row_batches(piece.row_ptr, MOMENT_BATCH):  # bounded temporaries
        row_ptr = piece.row_ptr[lo : hi + 1]
        first, last = row_ptr[0], row_ptr[-1]
        values = normalized_values(row_ptr - first, piece.data[first:last], scale[lo:hi], kind)
        for total, part in zip(
            totals, _column_moments(piece.indices[first:last], values, n_vars), strict=True
        ):
            total += part
    return tuple(totals)


def row_batches(row_ptr: np.ndarray, values: int) -> list[tuple[int, int]]:
    """Consecutive row ranges of a CSR piece holding about ``values`` stored values each."""
    n_rows = len(row_ptr) - 1
    if n_rows == 0:
        return []
    cuts = np.searchsorted(row_ptr, np.arange(values, row_ptr[-1], values), side="right") - 1
    bounds = np.unique(np.concatenate([[0], np.clip(cuts, 1, n_rows), [n_rows]]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def task_clipped(path: str, block: Block, clip: np.ndarray) -> tuple:
    """Pass 2 of seurat_v3: per-gene sums and squares of the counts clipped at ``clip``."""
    piece = read_piece(path, block)
    return _clipped_moments(piece.indices, piece.data, clip)


def task_select(path: str, block: Block, scale: np.ndarray, position: np.ndarray) -> Kept:
    """The normalised, log1p'd values of the HVGs in one block (columns renumbered)."""
    piece = read_piece(path, block)
    row_ptr, cols, raw = _select_columns(piece.row_ptr, piece.indices, piece.data, position)
    _sort_rows(row_ptr, cols, raw)  # CSR from other writers need not be canonical
    values = normalized_values(row_ptr, raw, scale, "log1p")
    if position.max() < np.iinfo(np.uint16).max:
        cols = cols.astype(np.uint16)
    return Kept(row_ptr, cols, values)


@dataclass
class GramPart:
    """A block's share of the Gram matrix: whole rows' X^T X (one triangle per pair), column
    sums of all its values, and the values of its shared rows (global row -> (cols, values))."""

    gram: np.ndarray
    sums: np.ndarray
    shared: dict[int, list[tuple[np.ndarray, np.ndarray]]]

    def __iadd__(self, other: GramPart) -> GramPart:
        self.gram += other.gram
        self.sums += other.sums
        for row, parts in other.shared.items():
            self.shared.setdefault(row, []).extend(parts)
        return self

    def total(self) -> tuple[np.ndarray, np.ndarray]:
        """The full symmetric Gram matrix, shared rows completed, and the column sums."""
        gram = self.gram
        for parts in self.shared.values():  # a few rows: numpy, no numba in the driver
            cols = np.concatenate([c for c, _ in parts]).astype(np.int64)
            values = np.concatenate([v for _, v in parts]).astype(np.float64)
            order = np.argsort(cols, kind="stable")
            cols, values = cols[order], values[order]
            gram[np.ix_(cols, cols)] += np.triu(np.outer(values, values))
        return symmetric(gram), self.sums


def add_gram(kept: Kept, block: Block, part: GramPart) -> None:
    """Add one block's HVG values to ``part``: its whole rows to the Gram matrix, all values to
    the column sums, its shared rows' values aside."""
    first, stop = block.whole_rows()
    gram_update(kept.row_ptr[first : stop + 1], kept.cols, kept.values, part.gram)
    part.sums += np.bincount(kept.cols, weights=kept.values, minlength=len(part.sums))
    for row in block.partial_rows():
        lo, hi = kept.row_ptr[row], kept.row_ptr[row + 1]
        part.shared.setdefault(block.row_start + row, []).append(
            (kept.cols[lo:hi].copy(), kept.values[lo:hi].copy())
        )


def task_gram(
    path: str,
    blocks: Sequence[Block],
    scales: Sequence[np.ndarray],
    kept: Sequence[Kept | None],
    position: np.ndarray,
    width: int,
) -> GramPart:
    """Pass 3 for consecutive blocks: one Gram matrix for them all (a few n_hvg^2 results to
    gather instead of one per block).  A block's HVG values come from ``kept`` or, where that is
    None, from reading X."""
    part = GramPart(np.zeros((width, width)), np.zeros(width), {})
    for block, scale, values in zip(blocks, scales, kept, strict=True):
        add_gram(
            values if values is not None else task_select(path, block, scale, position), block, part
        )
    return part


def task_project(kept: Kept, loadings: np.ndarray) -> np.ndarray:
    """Pass 4: the block's rows times the loadings (n_hvg x n_comps), uncentred, float64."""
    return _project(kept.row_ptr, kept.cols, kept.values, loadings)


def task_select_project(
    path: str, block: Block, scale: np.ndarray, position: np.ndarray, loadings: np.ndarray
) -> np.ndarray:
    """Pass 4 reading X again (the HVG values were not kept)."""
    return task_project(task_select(path, block, scale, position), loadings)


# --------------------------------------------------------------------------- HVG selection


def mean_var(sums: np.ndarray, squares: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """scanpy's per-gene mean and unbiased variance from sums and sums of squares."""
    mean = sums / n
    var = squares / n - mean**2
    if n != 1:
        var *= n / (n - 1)
    return mean, var


def median_absolute_deviation(values: pd.Series) -> float:
    """statsmodels' MAD (normalised to the standard deviation), as scanpy's cell_ranger uses."""
    from scipy.stats import norm

    a = np.asarray(values, dtype=np.float64)
    if not a.size:
        return np.nan
    return float(np.median(np.abs(a - np.median(a)) / norm.ppf(0.75)))


def mean_bins(means: pd.Series, flavor: str) -> pd.Series:
    """scanpy's mean-expression bins: 20 equal-width (seurat) or 5 % quantiles (cell_ranger)."""
    import pandas as pd

    if flavor == "seurat":
        bins = N_BINS
    else:
        bins = np.r_[-np.inf, np.percentile(means, np.arange(10, 105, 5)), np.inf]
    try:
        return pd.cut(means, bins=bins)
    except ValueError as err:
        if "Bin edges must be unique" not in str(err):
            raise
        raise ChunkatlasError(
            f"HVG flavor {flavor!r} failed: too many genes without counts to form its "
            "mean-expression bins; use flavor 'seurat'"
        ) from None


def top_genes(dispersion_norm: np.ndarray, n_top_genes: int) -> np.ndarray:
    """scanpy's top-n selection: every gene at or above the n-th highest normalised dispersion."""
    finite = dispersion_norm[~np.isnan(dispersion_norm)]
    if not finite.size:
        raise ChunkatlasError("no gene has a normalised dispersion: X holds no variation")
    n = min(n_top_genes, finite.size)
    finite[::-1].sort()
    return np.nan_to_num(dispersion_norm, nan=-np.inf) >= finite[n - 1]


def dispersion_table(
    mean: np.ndarray, var: np.ndarray, flavor: str, n_top_genes: int
) -> pd.DataFrame:
    """HVG columns of flavor seurat or cell_ranger from the moments of the log1p'd data
    (seurat: of its expm1), as scanpy computes them."""
    import pandas as pd

    mean = mean.copy()
    mean[mean == 0] = 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = var / mean
        if flavor == "seurat":
            dispersion[dispersion == 0] = np.nan
            dispersion = np.log(dispersion)
            mean = np.log1p(mean)
    df = pd.DataFrame({"means": mean, "dispersions": dispersion})
    df["mean_bin"] = mean_bins(df["means"], flavor)
    grouped = df.groupby("mean_bin", observed=True)["dispersions"]
    if flavor == "seurat":
        stats = grouped.agg(avg="mean", dev="std")
        single = stats["dev"].isnull()  # one gene in its bin: normalised dispersion 1
        stats.loc[single, "dev"] = stats.loc[single, "avg"]
        stats.loc[single, "avg"] = 0
    else:
        stats = grouped.agg(avg="median", dev=median_absolute_deviation)
    stats = stats.loc[df["mean_bin"]].set_index(df.index)
    df["dispersions_norm"] = (df["dispersions"] - stats["avg"]) / stats["dev"]
    highly_variable = top_genes(df["dispersions_norm"].to_numpy(), n_top_genes)
    return pd.DataFrame(
        {
            "highly_variable": highly_variable,
            "means": df["means"].to_numpy(),
            "dispersions": df["dispersions"].to_numpy(),
            "dispersions_norm": df["dispersions_norm"].to_numpy().astype(np.float32),
        }
    )


def seurat_v3_clip(mean: np.ndarray, var: np.ndarray, n_obs: int) -> tuple[np.ndarray, np.ndarray]:
    """The regularised standard deviation (loess of log variance on log mean, scikit-misc) and
    the clip value of every gene, as scanpy's seurat_v3."""
    try:
        from skmisc.loess import loess
    except ImportError as err:
        raise ChunkatlasError(
            "HVG flavor 'seurat_v3' needs scikit-misc: pip install scikit-misc"
        ) from err
    not_const = var > 0
    if not_const.sum() < 3:
        raise ChunkatlasError("HVG flavor 'seurat_v3' needs at least 3 genes with varying counts")
    estimated = np.zeros(len(mean), dtype=np.float64)
    model = loess(np.log10(mean[not_const]), np.log10(var[not_const]), span=SPAN, degree=2)
    model.fit()
    estimated[not_const] = model.outputs.fitted_values
    reg_std = np.sqrt(10**estimated)
    return reg_std, reg_std * np.sqrt(n_obs) + mean


def seurat_v3_table(
    mean: np.ndarray,
    var: np.ndarray,
    reg_std: np.ndarray,
    clipped_sums: np.ndarray,
    clipped_squares: np.ndarray,
    n_obs: int,
    n_top_genes: int,
) -> pd.DataFrame:
    """HVG columns of flavor seurat_v3 (one batch), as scanpy computes them."""
    import pandas as pd

    norm_var = (1 / ((n_obs - 1) * np.square(reg_std))) * (
        (n_obs * np.square(mean)) + clipped_squares - 2 * clipped_sums * mean
    )
    norm_vars = norm_var.reshape(1, -1)
    ranked = np.argsort(np.argsort(-norm_vars, axis=1), axis=1).astype(np.float32)
    ranked[ranked >= n_top_genes] = np.nan
    rank = np.ma.median(np.ma.masked_invalid(ranked), axis=0).filled(np.nan)
    return pd.DataFrame(
        {
            "highly_variable": ~np.isnan(rank),
            "highly_variable_rank": rank,
            "means": mean,
            "variances": var,
            "variances_norm": np.mean(norm_vars, axis=0).astype(np.float64),
        }
    )


# --------------------------------------------------------------------------- PCA


def top_eigenpairs(matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues (descending) and eigenvectors of a symmetric matrix.

    Large matrices go through ARPACK's Lanczos iteration to machine precision (a fraction of the
    time of a full tridiagonalisation), from a fixed start vector; small ones, or no
    convergence, through LAPACK.
    """
    import scipy.linalg
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    width = matrix.shape[0]
    if width > 500 and 3 * k < width:
        start = np.random.default_rng(0).uniform(-1, 1, width)
        try:
            values, vectors = eigsh(matrix, k=k, which="LA", tol=0, v0=start)
        except ArpackNoConvergence:
            pass
        else:
            order = np.argsort(values)[::-1]
            return values[order], vectors[:, order]
    values, vectors = scipy.linalg.eigh(matrix, subset_by_index=[width - k, width - 1])
    return values[::-1].copy(), vectors[:, ::-1].copy()


@dataclass(frozen=True)
class PcaFit:
    """Principal components of the HVGs: components (n_comps x n_hvg), their variances."""

    components: np.ndarray
    variance: np.ndarray
    variance_ratio: np.ndarray
    mean: np.ndarray


def pca_from_gram(gram: np.ndarray, sums: np.ndarray, n_obs: int, n_comps: int) -> PcaFit:
    """PCA from X^T X and column sums: eigenvectors of the covariance (ddof=1), largest first,
    each signed so its largest-magnitude loading is positive (sklearn's svd_flip on V).

    ``gram`` is overwritten with the covariance."""
    mean = sums / n_obs
    cov = gram  # in place, row block by row block: the Gram matrix is not needed afterwards
    for lo in range(0, len(mean), 256):
        cov[lo : lo + 256] -= n_obs * np.outer(mean[lo : lo + 256], mean)
    cov /= n_obs - 1
    variance, vectors = top_eigenpairs(cov, n_comps)
    components = vectors.T.copy()
    biggest = np.argmax(np.abs(components), axis=1)
    components *= np.sign(components[np.arange(n_comps), biggest])[:, None]
    return PcaFit(components, variance, variance / np.trace(cov), mean)


# --------------------------------------------------------------------------- driver


def in_order(futures: Sequence) -> Iterator[tuple[int, object]]:
    """(index, result) of each future in submission order, each released once fetched.

    Adding partial results in a fixed order keeps floating-point sums, and so the results,
    identical from run to run whatever order the tasks end in.
    """
    for index, future in enumerate(futures):
        result = future.result()
        future.release()
        yield index, result


def sum_results(futures: Sequence) -> tuple | GramPart:
    """Sum of what ``futures`` return (tuples of arrays element-wise), in submission order."""
    total = None
    for _, part in in_order(futures):
        if isinstance(part, tuple):
            part = (
                list(part) if total is None else [a + b for a, b in zip(total, part, strict=True)]
            )
            total = part
        elif total is None:
            total = part
        else:
            total += part
    return tuple(total) if isinstance(total, list) else total


def library_scale(library: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Per-cell divisor of normalize_total(target_sum=None): size / the median size of the cells
    with counts (scanpy 1.12 leaves empty cells out of the median), in X's float type, 1 for
    empty cells (scanpy's in-memory arithmetic)."""
    counts = library.astype(dtype)
    if not (counts > 0).any():
        raise ChunkatlasError("no cell has counts: X holds only zeros")
    target = np.median(counts[counts > 0])
    scale = counts / target
    return scale + (scale == 0)


class RowWriter:
    """Streams per-row partial projections, in row order, into a zarr array of float32 rows.

    Consecutive blocks may share their boundary row (its parts are added); rows no block covers
    (cells without stored values) project to zero before centring.
    """

    def __init__(self, array: zarr.Array, offset: np.ndarray):
        self.array, self.offset = array, offset
        self.next_row = 0
        self.pending: tuple[int, np.ndarray] | None = None
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.written = 0

    def add(self, start: int, rows: np.ndarray) -> None:
        if not len(rows):
            return
        rows = np.array(rows, dtype=np.float64)
        if self.pending is not None:
            row, part = self.pending
            if row == start:
                rows[0] += part
            else:
                self._emit(row, part[None, :])
            self.pending = None
        self._emit(start, rows[:-1])
        self.pending = (start + len(rows) - 1, rows[-1])

    def close(self) -> None:
        if self.pending is not None:
            row, part = self.pending
            self._emit(row, part[None, :])
            self.pending = None
        n_obs = self.array.shape[0]
        if self.next_row < n_obs:
            self._emit(n_obs, np.zeros((0, self.array.shape[1])))
        self._flush(final=True)

    def _emit(self, start: int, rows: np.ndarray) -> None:
        if start > self.next_row:  # rows without stored values
            self._append(np.zeros((start - self.next_row, self.array.shape[1])))
        self._append(rows)

    def _append(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        self.buffer.append((rows - self.offset).astype(np.float32))
        self.buffered += len(rows)
        self.next_row += len(rows)
        self._flush()

    def _flush(self, final: bool = False) -> None:
        chunk = self.array.chunks[0]
        if self.buffered < chunk and not final:
            return
        rows = np.concatenate(self.buffer) if self.buffer else np.zeros((0, self.array.shape[1]))
        keep = len(rows) if final else len(rows) // chunk * chunk
        if keep:
            self.array[self.written : self.written + keep] = rows[:keep]
            self.written += keep
        self.buffer = [rows[keep:]] if keep < len(rows) else []
        self.buffered = len(rows) - keep


@dataclass
class FusedResult:
    """What the passes computed, before the projection is written."""

    var: pd.DataFrame
    hvg: np.ndarray
    fit: PcaFit
    seconds: dict[str, float]


def select_hvgs(
    client,
    layout: Layout,
    blocks: list[Block],
    flavor: str,
    n_top_genes: int,
    seconds: dict[str, float],
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Passes 1 and 2: the HVG table, per-cell scale and per-gene stored counts."""
    path, n_obs, n_vars = layout.path, layout.n_obs, layout.n_vars
    dtype = work_dtype(layout.dtype)
    if flavor == "seurat_v3":
        with timed("count_moments", seconds, "pass 1: library sizes and moments of the counts"):
            futures = client.map(
                task_count_moments, [path] * len(blocks), blocks, n_vars=n_vars, pure=False
            )
            library, sums, squares, stored = gather_pass_one(futures, blocks, layout, integers=True)
        mean, var = mean_var(sums, squares, n_obs)
        with timed("loess", seconds, "seurat_v3 variance fit"):
            reg_std, clip = seurat_v3_clip(mean, var, n_obs)
        with timed("clipped_moments", seconds, "pass 2: moments of the clipped counts"):
            clipped = sum_results(
                client.map(
                    task_clipped,
                    [path] * len(blocks),
                    blocks,
                    clip=client.scatter(clip, broadcast=True),
                    pure=False,
                )
            )
        table = seurat_v3_table(mean, var, reg_std, *clipped, n_obs, n_top_genes)
        return table, library_scale(library, dtype), stored
    with timed("library_sizes", seconds, "pass 1"):
        futures = client.map(task_library_sizes, [path] * len(blocks), blocks, pure=False)
        (library,) = gather_pass_one(futures, blocks, layout, integers=False)
        scale = library_scale(library, dtype)
    kind = "log1p_expm1" if flavor == "seurat" else "log1p"
    with timed("moments", seconds, f"pass 2: moments of the normalised values, {kind}"):
        futures = client.map(
            task_moments,
            [path] * len(blocks),
            blocks,
            scales(scale, blocks),
            kind=kind,
            n_vars=n_vars,
            pure=False,
        )
        sums, squares, stored = sum_results(futures)
    mean, var = mean_var(sums, squares, n_obs)
    return dispersion_table(mean, var, flavor, n_top_genes), scale, stored


def gather_pass_one(
    futures: Sequence, blocks: Sequence[Block], layout: Layout, *, integers: bool
) -> tuple:
    """Library sizes (shared rows added up) and any summed per-gene moments from pass 1's
    futures, after refusing X if it holds values that are not counts."""
    library = np.zeros(layout.n_obs, dtype=np.float64)
    problems = np.zeros(3, dtype=np.int64)
    totals: list = []
    for index, (rows, found, *parts) in in_order(futures):
        block = blocks[index]
        library[block.row_start : block.row_stop] += rows
        problems += found
        totals = parts if not totals else [a + b for a, b in zip(totals, parts, strict=True)]
    refuse_problems(problems, integers=integers, where=layout.path)
    return (library, *totals)


def keep_blocks(blocks: Sequence[Block], total_mb: float, budget_mb: float) -> np.ndarray:
    """Which tasks keep their HVG values for the projection: the first ones whose share of
    ``total_mb`` (in proportion to their stored values) fits ``budget_mb``; the rest read X
    again."""
    sizes = np.array(
        [
            (b.entry_stop - b.entry_start)
            if b.entry_start is not None
            else (b.row_stop - b.row_start)
            for b in blocks
        ],
        dtype=np.float64,
    )
    estimate = total_mb * sizes / max(sizes.sum(), 1.0)
    return np.cumsum(estimate) <= budget_mb


def scales(scale: np.ndarray, blocks: Sequence[Block]) -> list[np.ndarray]:
    """Each block's slice of the per-cell scale."""
    return [scale[b.row_start : b.row_stop] for b in blocks]


def run(
    client,
    layout: Layout,
    blocks: list[Block],
    *,
    flavor: str,
    n_top_genes: int,
    n_comps: int,
    keep_mb: float = KEEP_MB,
) -> tuple[FusedResult, Callable]:
    """Passes 1-3 and the PCA on the cluster of ``client``.

    Returns the result and a function that runs pass 4, streaming the projection into a zarr
    array of n_obs x n_comps float32, and then releases the HVG values kept on the workers.
    """
    if flavor not in FLAVORS:
        raise ChunkatlasError(f"HVG flavor {flavor!r} is not one of {', '.join(FLAVORS)}")
    seconds: dict[str, float] = {}
    path = layout.path
    table, scale, stored = select_hvgs(client, layout, blocks, flavor, n_top_genes, seconds)
    hvg = table["highly_variable"].to_numpy()
    width = int(hvg.sum())
    if n_comps >= width:
        raise ChunkatlasError(f"n_comps {n_comps} must be below the number of HVGs ({width})")
    position = np.full(layout.n_vars, -1, dtype=np.int32)
    position[hvg] = np.arange(width, dtype=np.int32)
    kept_mb = (int(stored[hvg].sum()) * (6 if width < 65535 else 8) + 8 * layout.n_obs) / 2**20
    keep = keep_blocks(blocks, kept_mb, keep_mb)
    block_scales = scales(scale, blocks)
    positions = client.scatter(position, broadcast=True)
    kept: dict[int, object] = {}
    with timed(
        "gram",
        seconds,
        f"pass 3: Gram matrix of {width} HVGs, keeping the HVG "
        f"values of {keep.sum()} of {len(blocks)} tasks, of {kept_mb:.0f} MB in all",
    ):
        for i in np.flatnonzero(keep):
            kept[i] = client.submit(
                task_select, path, blocks[i], block_scales[i], position=positions, pure=False
            )
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        grams = [
            client.submit(
                task_gram,
                path,
                [blocks[i] for i in group],
                [block_scales[i] for i in group],
                [kept.get(i) for i in group],
                position=positions,
                width=width,
                pure=False,
            )
            for group in np.array_split(np.arange(len(blocks)), min(len(blocks), 4 * n_workers))
        ]
        gram, sums = sum_results(grams).total()
    with timed("eigh", seconds, f"PCA: {n_comps} eigenpairs of {width}"):
        fit = pca_from_gram(gram, sums, layout.n_obs, n_comps)
    del gram

    def project(array: zarr.Array) -> None:
        loadings = fit.components.T.copy()
        with timed("projection", seconds, "pass 4"):
            shared = client.scatter(loadings, broadcast=True)
            futures = [
                client.submit(task_project, kept[i], loadings=shared, pure=False)
                if i in kept
                else client.submit(
                    task_select_project,
                    path,
                    block,
                    block_scale,
                    position=positions,
                    loadings=shared,
                    pure=False,
                )
                for i, (block, block_scale) in enumerate(zip(blocks, block_scales, strict=True))
            ]
            writer = RowWriter(array, fit.mean @ loadings)
            for future, block in zip(futures, blocks, strict=True):
                writer.add(block.row_start, future.result())
                future.release()
            writer.close()
            client.cancel(list(kept.values()))

    return FusedResult(table, hvg, fit, seconds), project


# --------------------------------------------------------------------------- the result store


def result_anndata(
    obs: pd.DataFrame,
    var: pd.DataFrame,
    done: FusedResult,
    flavor: str,
    dtype: np.dtype,
    uns: dict | None = None,
):
    """The AnnData written to hvg_pca.zarr, without obsm['X_pca'] (streamed in afterwards):
    scanpy's var columns, varm['PCs'] (zeros outside the HVGs), uns['hvg'] and uns['pca']."""
    import anndata as ad

    var = var.copy()
    for column in done.var.columns:
        var[column] = done.var[column].to_numpy()
    loadings = np.zeros((len(var), len(done.fit.variance)), dtype=np.float64)
    loadings[done.hvg] = done.fit.components.T
    pca = {
        "params": {"zero_center": True, "use_highly_variable": True, "mask_var": "highly_variable"},
        "variance": done.fit.variance.astype(dtype),
        "variance_ratio": done.fit.variance_ratio.astype(dtype),
    }
    return ad.AnnData(
        obs=obs,
        var=var,
        varm={"PCs": loadings},
        uns={"hvg": {"flavor": flavor}, "pca": pca, **(uns or {})},
    )


def read_frames(path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """obs and var of the store at ``path`` (their names unique)."""
    from anndata.io import read_elem

    from chunkatlas.lazy import check_unique_names

    source = zarr.open_group(path, mode="r")
    obs, var = read_elem(source["obs"]), read_elem(source["var"])
    check_unique_names(obs, var, where=path)
    return obs, var


def analyze(
    store: str | os.PathLike,
    out: str | os.PathLike,
    *,
    client,
    rows: int,
    flavor: str,
    n_top_genes: int,
    n_comps: int,
    layout: Layout | None = None,
    uns: dict | None = None,
    keep_mb: float = KEEP_MB,
    frames: Future | None = None,
    zarr_format: int = 3,
):
    """Analyze the AnnData store ``store`` on the Dask cluster of ``client``; write ``out``.

    ``frames`` is a future of :func:`read_frames` for the store, started early by the caller;
    None: read obs and var while the passes run.
    Returns the result as an AnnData whose ``obsm['X_pca']`` is a Dask array over ``out``.
    """
    from chunkatlas.storeio import new_zarr_store

    layout = layout or open_layout(store)
    blocks = plan_blocks(layout, rows)
    log.info("fused engine: %d tasks over %d stored values", len(blocks), layout.nnz)
    with ThreadPoolExecutor(1) as pool:
        # anndata's import and obs/var overlap the passes: the driver mostly waits during them
        frames = frames or pool.submit(read_frames, layout.path)
        done, project = run(
            client,
            layout,
            blocks,
            flavor=flavor,
            n_top_genes=n_top_genes,
            n_comps=n_comps,
            keep_mb=keep_mb,
        )
        obs, var = frames.result()
    import dask.array as da
    from anndata.io import write_elem

    result = result_anndata(obs, var, done, flavor, work_dtype(layout.dtype), uns)
    result.uns.setdefault("chunkatlas", {})["seconds"] = done.seconds
    with new_zarr_store(out, zarr_format) as root:
        write_elem(root, "/", result)
        array = root["obsm"].create_array(
            "X_pca",
            shape=(layout.n_obs, n_comps),
            dtype="float32",
            chunks=(max(1, min(layout.n_obs, 10_000)), n_comps),
        )
        array.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        project(array)
        write_elem(root["uns"]["chunkatlas"], "seconds", done.seconds)
    result.obsm["X_pca"] = da.from_zarr(
        zarr.open_array(os.path.join(out, "obsm", "X_pca"), mode="r")
    )
    return result
