"""What the workers run: one function per pass over a block of X, and the partial results they
return."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from chunkatlas.analysis.fused import _stash as stash
from chunkatlas.analysis.fused._kernels import (
    _batch_clipped_moments,
    _batch_column_moments,
    _clipped_moments,
    _clipped_rows,
    _column_moments,
    _project,
    _row_sums,
    _select_columns,
    _sort_rows,
    _welford_rows,
    gram_update,
    normalized_values,
    symmetric,
)
from chunkatlas.analysis.fused._plan import Block, read_piece
from chunkatlas.analysis.fused._stash import Kept
from chunkatlas.store import StoreLocation

#: Stored values normalised at once in pass 2 (bounds a task's temporaries).
MOMENT_BATCH = 1 << 21


def task_library_sizes(store: StoreLocation, block: Block) -> tuple:
    """Pass 1: the block's row sums (partial for a shared first or last row) and the counts of
    values that are not counts (as :func:`chunkatlas.analysis._checks.block_problems`)."""
    piece = read_piece(store, block, indices=False)
    return _row_sums(piece.row_ptr, piece.data)


@dataclass
class PerBatch:
    """A block's per-batch partial sums: row i of each array belongs to batch ``present[i]``
    (the batches among the block's cells, not all of them: what a task holds is bounded by
    the batches it meets)."""

    present: np.ndarray
    arrays: tuple[np.ndarray, ...]

    def added_to(self, totals: list[np.ndarray] | None, n_batches: int) -> list[np.ndarray]:
        """``totals`` (one array per batch and gene each; None: zeros) plus these sums."""
        if totals is None:
            totals = [np.zeros((n_batches, *a.shape[1:]), dtype=a.dtype) for a in self.arrays]
        for total, part in zip(totals, self.arrays, strict=True):
            total[self.present] += part
        return totals


@dataclass(frozen=True)
class BlockBatches:
    """The batches of one block's cells: the batches present, and each row's index among them."""

    present: np.ndarray
    row_batch: np.ndarray

    def zeros(self, n_vars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-batch sums, squares and positive counts, none added yet."""
        shape = (len(self.present), n_vars)
        return np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=np.int32)

    def add_moments(self, rows: slice, row_ptr, indices, values, totals) -> None:
        """Add the values of this block's ``rows`` (``row_ptr`` starting at the first) to the
        per-batch ``totals`` (:meth:`zeros`)."""
        _batch_column_moments(row_ptr, indices, values, self.row_batch[rows], *totals)


def task_count_moments(
    store: StoreLocation, block: Block, batches: BlockBatches | None, n_vars: int
) -> tuple:
    """Pass 1 of seurat_v3: as :func:`task_library_sizes`, per-gene moments of the counts and,
    with ``batches``, their moments per batch."""
    piece = read_piece(store, block)
    per_batch = ()
    if batches is not None:
        totals = batches.zeros(n_vars)
        batches.add_moments(slice(None), piece.row_ptr, piece.indices, piece.data, totals)
        per_batch = (PerBatch(batches.present, totals),)
    return (
        *_row_sums(piece.row_ptr, piece.data),
        *_column_moments(piece.indices, piece.data, n_vars),
        *per_batch,
    )


def task_batch_count_moments(
    store: StoreLocation, blocks: Sequence[Block], selected: Sequence[np.ndarray], n_vars: int
) -> tuple:
    """Pass 1 of seurat_v3 for one batch, whose cells are the ``selected`` rows of ``blocks``
    (in row order): the row sums of its cells in each block, the problem counts and column
    moments of their counts, and the Welford state of each gene over the batch's stored values
    (count, mean, sum of squared deviations), carried from block to block in row order, as
    scanpy's aggregate runs it: so the batch's means and variances are scanpy's bit for bit."""
    n_nz = np.zeros(n_vars, dtype=np.int64)
    mean, m2 = np.zeros(n_vars), np.zeros(n_vars)
    sums, squares = np.zeros(n_vars), np.zeros(n_vars)
    stored = np.zeros(n_vars, dtype=np.int64)
    problems = np.zeros(3, dtype=np.int64)
    row_sums = []
    for block, rows in zip(blocks, selected, strict=True):
        piece = read_piece(store, block)
        dense = block.entry_start is None
        block_rows, found = _welford_rows(
            piece.row_ptr,
            piece.indices,
            piece.data,
            rows,
            dense,
            n_nz,
            mean,
            m2,
            sums,
            squares,
            stored,
        )
        row_sums.append(block_rows)
        problems += found
    return row_sums, problems, sums, squares, stored, (n_nz, mean, m2)


def task_moments(
    store: StoreLocation,
    block: Block,
    scale: np.ndarray,
    batches: BlockBatches | None,
    kind: str,
    n_vars: int,
) -> tuple:
    """Pass 2: the block's row sums and the counts of values that are not counts (as pass 1:
    they check library sizes taken from obs, and the counts), then per-gene sums, squares and
    stored counts of the normalised, transformed values; with ``batches``, instead, their sums,
    squares and positive counts per batch (one :class:`PerBatch`)."""
    piece = read_piece(store, block)
    if batches is None:
        totals = [np.zeros(n_vars), np.zeros(n_vars), np.zeros(n_vars, dtype=np.int64)]
    else:
        totals = batches.zeros(n_vars)
    for lo, hi in row_batches(piece.row_ptr, MOMENT_BATCH):  # bounded temporaries
        row_ptr = piece.row_ptr[lo : hi + 1]
        first, last = row_ptr[0], row_ptr[-1]
        values = normalized_values(row_ptr - first, piece.data[first:last], scale[lo:hi], kind)
        indices = piece.indices[first:last]
        if batches is None:
            for total, part in zip(totals, _column_moments(indices, values, n_vars), strict=True):
                total += part
        else:
            batches.add_moments(slice(lo, hi), row_ptr - first, indices, values, totals)
    moments = tuple(totals) if batches is None else (PerBatch(batches.present, totals),)
    return (*_row_sums(piece.row_ptr, piece.data), *moments)


def row_batches(row_ptr: np.ndarray, values: int) -> list[tuple[int, int]]:
    """Consecutive row ranges of a CSR piece holding about ``values`` stored values each."""
    n_rows = len(row_ptr) - 1
    if n_rows == 0:
        return []
    cuts = np.searchsorted(row_ptr, np.arange(values, row_ptr[-1], values), side="right") - 1
    bounds = np.unique(np.concatenate([[0], np.clip(cuts, 1, n_rows), [n_rows]]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def task_clipped(store: StoreLocation, block: Block, clip: np.ndarray) -> tuple:
    """Pass 2 of seurat_v3: per-gene sums and squares of the counts clipped at ``clip``."""
    piece = read_piece(store, block)
    return _clipped_moments(piece.indices, piece.data, clip)


def task_batch_clipped_rows(
    store: StoreLocation, blocks: Sequence[Block], selected: Sequence[np.ndarray], clip: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pass 2 of seurat_v3 for one batch (as :func:`task_batch_count_moments`): the sums and
    squares of its counts clipped at ``clip``, added value by value in row order, as scanpy's."""
    sums, squares = np.zeros(len(clip)), np.zeros(len(clip))
    for block, rows in zip(blocks, selected, strict=True):
        piece = read_piece(store, block)
        _clipped_rows(piece.row_ptr, piece.indices, piece.data, rows, clip, sums, squares)
    return sums, squares


def task_batch_clipped(
    store: StoreLocation, block: Block, batches: BlockBatches, clip: np.ndarray
) -> tuple[PerBatch]:
    """Pass 2 of seurat_v3 with batches: per-batch sums and squares of the counts clipped at
    ``clip`` (a row per batch present in the block)."""
    piece = read_piece(store, block)
    parts = _batch_clipped_moments(
        piece.row_ptr, piece.indices, piece.data, batches.row_batch, clip
    )
    return (PerBatch(batches.present, parts),)


def task_select(
    store: StoreLocation,
    block: Block,
    scale: np.ndarray,
    position: np.ndarray,
    kind: str = "log1p",
) -> Kept:
    """The normalised, log1p'd values of the HVGs in one block (columns renumbered); with
    ``kind`` "identity", their values as stored (X already normalised)."""
    piece = read_piece(store, block)
    row_ptr, cols, raw = _select_columns(piece.row_ptr, piece.indices, piece.data, position)
    _sort_rows(row_ptr, cols, raw)  # CSR from other writers need not be canonical
    values = normalized_values(row_ptr, raw, scale, kind)
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
    holder: str | None = None  # the worker whose stash holds the blocks' HVG values
    kept: dict[str, int] = field(default_factory=lambda: {"memory": 0, "disk": 0})  # bytes

    def __iadd__(self, other: GramPart) -> GramPart:
        self.gram += other.gram
        self.sums += other.sums
        for where, nbytes in other.kept.items():
            self.kept[where] += nbytes
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
    store: StoreLocation,
    blocks: Sequence[Block],
    indices: Sequence[int],
    scales: Sequence[np.ndarray],
    position: np.ndarray,
    width: int,
    token: str,
    budget_bytes: float,
    kind: str = "log1p",
) -> GramPart:
    """Pass 3 for consecutive blocks: one Gram matrix for them all (a few n_hvg^2 results to
    gather instead of one per block).  Each block's HVG values go to this worker's stash for
    pass 4 (:mod:`chunkatlas.analysis.fused._stash`); the part names the worker that holds them."""

    part = GramPart(np.zeros((width, width)), np.zeros(width), {}, holder=worker_address())
    for block, index, scale in zip(blocks, indices, scales, strict=True):
        values = task_select(store, block, scale, position, kind)
        add_gram(values, block, part)
        part.kept[stash.put(token, index, values, budget_bytes)] += values.nbytes
    return part


def worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def task_project(kept: Kept, loadings: np.ndarray) -> np.ndarray:
    """Pass 4: the block's rows times the loadings (n_hvg x n_comps), uncentred, float64."""
    return _project(kept.row_ptr, kept.cols, kept.values, loadings)


def task_project_kept(
    token: str,
    index: int,
    store: StoreLocation,
    block: Block,
    scale: np.ndarray,
    position: np.ndarray,
    loadings: np.ndarray,
    kind: str = "log1p",
) -> np.ndarray:
    """Pass 4 from the values pass 3 kept for block ``index`` on this worker, or, where they
    are gone (the worker restarted, or this task ran elsewhere), from X read again."""

    kept = stash.take(token, index)
    if kept is None:
        kept = task_select(store, block, scale, position, kind)
    return task_project(kept, loadings)


def clear_stash(token: str) -> int:

    return stash.clear(token)
