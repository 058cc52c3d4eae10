"""Where X lives and how the passes split it: the store's stored_x, the tasks' blocks, and
reading one block on a worker."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import zarr

from chunkatlas.analysis._task_cells import check_task_cells
from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import StoreLocation, open_anndata_group, read_checked


@dataclass(frozen=True)
class StoredX:
    """Where X lives and how it is stored: what planning tasks needs to know."""

    location: StoreLocation
    n_obs: int
    n_vars: int
    sparse: bool
    dtype: np.dtype
    nnz: int = 0
    data_chunk: int = 0
    indptr: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: Each cell's library size as the store's obs records it (Census ``raw_sum``), or None.
    library: np.ndarray | None = field(default=None, repr=False, compare=False)


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


def open_stored_x(store: str | os.PathLike | StoreLocation) -> StoredX:
    """Describe X of the AnnData store ``store`` (CSR or dense), reading only its indptr."""
    location = StoreLocation.of(store)
    group = open_anndata_group(location)
    x, library = group["X"], recorded_library(group)
    if isinstance(x, zarr.Array):
        n_obs, n_vars = x.shape
        return StoredX(location, int(n_obs), int(n_vars), False, np.dtype(x.dtype), library=library)
    encoding = x.attrs.get("encoding-type")
    if encoding != "csr_matrix":
        raise ChunkatlasError(
            f"the fused engine reads X stored as csr_matrix or dense, not {encoding!r}; "
            "analyse the cell-major store (chunkatlas rechunk … --orientation cells)"
        )
    n_obs, n_vars = (int(n) for n in x.attrs["shape"])
    indptr = np.asarray(read_checked(x["indptr"], (slice(None),), location), dtype=np.int64)
    return StoredX(
        location,
        n_obs,
        n_vars,
        True,
        np.dtype(x["data"].dtype),
        nnz=int(indptr[-1]),
        data_chunk=int(x["data"].chunks[0]),
        indptr=indptr,
        library=library,
    )


#: The obs column with each cell's sum of counts, as the CELLxGENE Census names it.
LIBRARY_COLUMN = "raw_sum"


def recorded_library(group: zarr.Group) -> np.ndarray | None:
    """The obs column ``raw_sum`` of an AnnData store (float64), or None without one."""
    obs = group["obs"]
    if LIBRARY_COLUMN not in obs.attrs.get("column-order", []):
        return None
    column = obs[LIBRARY_COLUMN]
    if not isinstance(column, zarr.Array) or not np.issubdtype(column.dtype, np.number):
        return None  # e.g. a categorical: not a sum of counts
    return np.asarray(column[:], dtype=np.float64)


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


def plan_blocks(stored_x: StoredX, task_cells: int) -> list[Block]:
    """Split X into tasks of about ``task_cells`` cells, aligned with the on-disk chunks of CSR
    data."""
    check_task_cells(task_cells)
    n_obs = stored_x.n_obs
    if not stored_x.sparse:
        return [Block(lo, min(lo + task_cells, n_obs)) for lo in range(0, n_obs, task_cells)]
    indptr = stored_x.indptr
    target = round(task_cells * stored_x.nnz / max(n_obs, 1))
    bounds = entry_bounds(stored_x.nnz, target, stored_x.data_chunk)
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


def read_piece(location: StoreLocation, block: Block, *, indices: bool = True) -> Piece:
    """Read one block of X from the store at ``location`` (called on the workers, each of
    which opens the store itself)."""
    x = location.open()["X"]
    if block.entry_start is None:
        import scipy.sparse as sp

        rows = read_checked(x, (slice(block.row_start, block.row_stop),), location)
        csr = sp.csr_matrix(np.asarray(rows))
        return Piece(csr.indptr.astype(np.int64), csr.indices, csr.data)
    span = (slice(block.entry_start, block.entry_stop),)
    names = ("indices", "data") if indices else ("data",)
    if location.is_remote:  # the arrays' requests in flight together: one round trip, not two
        read = [_fetchers().submit(read_checked, x[name], span, location) for name in names]
        arrays = [future.result() for future in read]
    else:
        arrays = [read_checked(x[name], span, location) for name in names]
    return Piece(block.row_ptr, arrays[0] if indices else None, arrays[-1])


@functools.cache
def _fetchers() -> ThreadPoolExecutor:
    """Threads that wait on remote reads (each worker process makes its own)."""
    return ThreadPoolExecutor(4, thread_name_prefix="chunkatlas-fetch")


def work_dtype(dtype: np.dtype) -> np.dtype:
    """The float type scanpy normalises in: X's own float type, float32 for integer counts."""
    return np.dtype(dtype) if np.issubdtype(dtype, np.floating) else np.dtype(np.float32)
