"""Cells per Dask task of X, from the store's own geometry.

A task that reads blocks of cells reads every stored object its cells touch, whole (a shard's
index first, then its chunks).  So the natural task is one stored object: a shard of a sharded
store, a chunk of an unsharded one.  A cell-major CSR matrix is chunked by stored values, not
cells: an object of ``V`` values holds about ``V * n_obs / nnz`` cells.

Some stores have objects far larger than a task should hold: anndata 0.13 writes automatic
shards of about 80 million values (the whole matrix, at 70,000 cells).  Their tasks take as many
whole inner chunks as fit in :data:`TASK_VALUES` stored values instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chunkatlas.store._layout import is_sparse, matrix_shape

#: Most stored values a default task reads: 16 M (~128 MB as float32 values and int32 indices,
#: about the workflow's 10,000-cell tasks of Census-sized cells).
TASK_VALUES = 1 << 24


@dataclass(frozen=True)
class XGeometry:
    """How X of a cell-major store is cut: cells per stored object and per (inner) chunk."""

    n_obs: int
    object_cells: int
    chunk_cells: int
    object_values: int  # stored values per object (sparse: of data and of indices each)
    chunk_values: int

    @classmethod
    def of(cls, x) -> XGeometry:
        """The geometry of ``x``, a stored X (a CSR group or a dense array)."""
        n_obs, n_vars = matrix_shape(x)
        array = x["data"] if is_sparse(x) else x
        chunk = array.chunks[0]
        shards = getattr(array, "shards", None)  # None: zarr v2, or unsharded
        whole = shards[0] if shards else chunk
        if is_sparse(x):
            per_cell = array.shape[0] / max(n_obs, 1) or 1.0  # mean stored values per cell
            return cls(
                n_obs,
                max(1, round(whole / per_cell)),
                max(1, round(chunk / per_cell)),
                whole,
                chunk,
            )
        row = max(n_vars, 1)
        return cls(n_obs, whole, chunk, whole * row, chunk * row)

    def default_task_cells(self) -> int:
        """Cells per task: one stored object, or whole inner chunks up to TASK_VALUES values."""
        if self.object_values <= TASK_VALUES:
            task_cells = self.object_cells
        else:
            task_cells = self.chunk_cells * max(1, TASK_VALUES // self.chunk_values)
        return max(1, min(task_cells, self.n_obs))


def objects_per_pass(x, task_cells: int) -> int:
    """Stored objects of X that one pass in tasks of ``task_cells`` cells reads (an object read
    by two tasks counts twice; sparse X: those of ``data``, as many again of ``indices``)."""
    return _ObjectCount(x)(task_cells)


class _ObjectCount:
    """Objects a pass reads for any cells per task, from X's geometry and row pointers read
    once."""

    def __init__(self, x) -> None:
        self.geometry = XGeometry.of(x)
        self.indptr = np.asarray(x["indptr"][:]) if is_sparse(x) else None

    def __call__(self, task_cells: int) -> int:
        n_obs = self.geometry.n_obs
        starts = np.arange(0, n_obs, task_cells)
        stops = np.minimum(starts + task_cells, n_obs)
        if self.indptr is None:
            per = self.geometry.object_cells
            return int(((stops - 1) // per - starts // per + 1).sum())
        first, last = self.indptr[starts], self.indptr[stops]
        per = self.geometry.object_values
        reads = np.where(last > first, (last - 1) // per - first // per + 1, 0)
        return 2 * int(reads.sum())


def split_objects_warning(x, task_cells: int) -> str:
    """One line saying what ``task_cells`` cells per task cost against the store's own
    geometry; empty when it reads no more objects than the default."""
    count = _ObjectCount(x)
    default = count.geometry.default_task_cells()
    given, best = count(task_cells), count(default)
    if given <= best:
        return ""
    return (
        f"{task_cells:,} cells per task splits X's stored objects "
        f"(~{count.geometry.object_cells:,} cells each): a pass reads {given:,} objects instead "
        f"of {best:,}; leave it out for "
        f"{default:,} cells per task"
    )


def cells_per_task_of(x, task_cells: int | None = None) -> tuple[int, str]:
    """Cells per task of X: ``task_cells`` if given, with :func:`split_objects_warning`'s line,
    else the store's default (a gene-major X, which blocks of cells would read whole:
    ``task_cells`` or all cells; the analysis refuses it)."""
    if x.attrs.get("encoding-type") == "csc_matrix":
        return task_cells or matrix_shape(x)[0], ""
    if task_cells is None:
        return XGeometry.of(x).default_task_cells(), ""
    return task_cells, split_objects_warning(x, task_cells)
