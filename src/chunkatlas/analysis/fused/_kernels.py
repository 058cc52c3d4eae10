"""The numba kernels on CSR pieces, and the numpy steps around them that must repeat scanpy's
arithmetic value by value.

numba is loaded at the first call of a kernel (:func:`jit`), so the driver, which imports this
module but runs no kernel, never pays for it."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

#: Stored integer counts 1..TABLE_COUNTS are normalised through a per-cell table of values.
TABLE_COUNTS = 32
#: Above this share of non-zero HVG values a task accumulates the Gram matrix with dense BLAS.
DENSE_GRAM_DENSITY = 0.15
#: Columns per tile of the sparse Gram kernel (a 256 x 256 float64 tile is 512 KiB: in cache).
GRAM_TILE = 256
#: Rows densified at once by the dense Gram path (a block is DENSE_BLOCK_ROWS x n_top_genes).
DENSE_BLOCK_ROWS = 1024


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
    """Per-row sums accumulated in float64 (scanpy's library sizes before rounding), and in the
    same pass the counts of negative, NaN or infinite, and non-integer values (as
    :func:`chunkatlas.analysis._checks.block_problems`, without its temporaries)."""
    out = np.zeros(len(row_ptr) - 1, dtype=np.float64)
    problems = np.zeros(3, dtype=np.int64)
    for r in range(len(row_ptr) - 1):
        total = 0.0
        for j in range(row_ptr[r], row_ptr[r + 1]):
            x = data[j]
            total += x
            if not np.isfinite(x):
                problems[1] += 1
            else:
                problems[0] += x < 0
                problems[2] += x != np.floor(x)
        out[r] = total
    return out, problems


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
def _batch_column_moments(row_ptr, indices, values, row_batch, sums, squares, positive):
    """Add to the (batch, column) sums, sums of squares (squared in the values' type) and
    counts of positive values, in place; row r belongs to batch ``row_batch[r]``."""
    for r in range(len(row_ptr) - 1):
        b = row_batch[r]
        for j in range(row_ptr[r], row_ptr[r + 1]):
            c = indices[j]
            x = values[j]
            sums[b, c] += x
            squares[b, c] += x * x
            positive[b, c] += x > 0


@jit
def _welford_rows(row_ptr, indices, data, selected, dense, n_seen, mean, m2, sums, squares, stored):
    """The rows with ``selected[r]``, one batch's: Welford's update of each column's running
    count, mean and sum of squared deviations (``n_seen``, ``mean``, ``m2``, continued in place
    in row order), as scanpy's aggregate runs it: over the stored values of a sparse X, over
    every value, zeros too, of a ``dense`` one (whose rows come as CSR, columns sorted); and the
    column sums, squares and stored counts (as :func:`_column_moments`).  Returns the rows' sums
    (0 for the others) and the problem counts of their values (as :func:`_row_sums`)."""
    row_sums = np.zeros(len(row_ptr) - 1, dtype=np.float64)
    problems = np.zeros(3, dtype=np.int64)
    for r in range(len(row_ptr) - 1):
        if not selected[r]:
            continue
        total = 0.0
        j, stop = row_ptr[r], row_ptr[r + 1]
        for step in range(len(mean) if dense else stop - j):
            c = step if dense else indices[j]
            value = 0.0  # a dense row's zero, unless a value is stored for column c
            if j < stop and indices[j] == c:
                x = data[j]
                j += 1
                total += x
                if not np.isfinite(x):
                    problems[1] += 1
                else:
                    problems[0] += x < 0
                    problems[2] += x != np.floor(x)
                sums[c] += x
                squares[c] += x * x
                stored[c] += 1
                value = np.float64(x)
            n = n_seen[c] + 1
            n_seen[c] = n
            m = mean[c]
            delta = value - m
            m += delta / n
            mean[c] = m
            m2[c] += delta * (value - m)
        row_sums[r] = total
    return row_sums, problems


@jit
def _clipped_rows(row_ptr, indices, data, selected, clip, sums, squares):
    """Add min(value, clip[column]) and its square, in float64, of the rows with
    ``selected[r]`` to ``sums`` and ``squares``, value by value in row order (as scanpy's
    seurat_v3 sums one batch's clipped counts)."""
    for r in range(len(row_ptr) - 1):
        if not selected[r]:
            continue
        for j in range(row_ptr[r], row_ptr[r + 1]):
            c = indices[j]
            x = min(np.float64(data[j]), clip[c])
            sums[c] += x
            squares[c] += x * x


@jit
def _batch_clipped_moments(row_ptr, indices, data, row_batch, clip):
    """Per (batch, column) sums and squares of min(value, clip[batch, column]) in float64
    (seurat_v3 with batches); row r belongs to batch ``row_batch[r]``."""
    sums = np.zeros(clip.shape, dtype=np.float64)
    squares = np.zeros(clip.shape, dtype=np.float64)
    for r in range(len(row_ptr) - 1):
        b = row_batch[r]
        for j in range(row_ptr[r], row_ptr[r + 1]):
            c = indices[j]
            x = min(np.float64(data[j]), clip[b, c])
            sums[b, c] += x
            squares[b, c] += x * x
    return sums, squares


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
    """Sort each row's columns (and values with them) in place, where they are not sorted.

    A Shell sort (gaps 3k + 1: 1, 4, 13, ...) written out rather than ``np.argsort``: numba
    compiles its own sorts for seconds, which every fresh environment (each container or
    compute node) would pay. A CSR row's columns are distinct: stability does not matter.
    """
    for r in range(len(row_ptr) - 1):
        lo, hi = row_ptr[r], row_ptr[r + 1]
        unsorted = False
        for j in range(lo + 1, hi):
            if cols[j] < cols[j - 1]:
                unsorted = True
                break
        if not unsorted:
            continue
        gap = 1
        while gap < (hi - lo) // 3:
            gap = 3 * gap + 1
        while gap > 0:
            for i in range(lo + gap, hi):
                col, value = cols[i], values[i]
                j = i
                while j - gap >= lo and cols[j - gap] > col:
                    cols[j], values[j] = cols[j - gap], values[j - gap]
                    j -= gap
                cols[j], values[j] = col, value
            gap //= 3


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
    (flavor seurat computes its statistics on expm1 of the log1p'd data).  For X that is
    already normalised and log1p'd (``analysis.normalized``): ``identity``, or ``expm1`` for
    seurat's statistics."""
    if kind == "identity":
        return values
    if kind == "expm1":
        return np.expm1(values)
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
