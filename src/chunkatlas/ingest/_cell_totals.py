"""Each cell's ``raw_sum`` and ``nnz`` in obs, as the CELLxGENE Census records them, counted from
X while X streams into a new store (so the source is read once).

- ``raw_sum`` (float64): the sum of the cell's values in X, added in float64 in the order of its
  row; exact for integer counts.
- ``nnz`` (int64): the number of values X stores for the cell: the stored values of its CSR row
  (explicit zeros included), or the non-zero values of its dense row.

Only X is counted, never layers.  An obs that already has either column (a Census source, a store
chunkatlas wrote) is checked against X: the write is refused, naming the first cell that differs,
unless raw_sum is equal exactly and nnz too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.io import write_elem

from chunkatlas.errors import ChunkatlasError

TOTAL_COLUMNS = ("raw_sum", "nnz")


def row_totals(block) -> tuple[np.ndarray, np.ndarray]:
    """``raw_sum`` (float64) and ``nnz`` (int64) of each row of a sparse or dense matrix."""
    if sp.issparse(block):
        rows = sp.csr_matrix(block)
        nnz = np.diff(rows.indptr).astype(np.int64)
        # CSR matvec adds each row's stored values one after the other, in float64
        in_float64 = sp.csr_matrix(
            (rows.data.astype(np.float64), rows.indices, rows.indptr), shape=rows.shape
        )
        return in_float64 @ np.ones(rows.shape[1]), nnz
    dense = np.asarray(block)
    sums = np.zeros(dense.shape[0], dtype=np.float64)
    for column in dense.T:  # gene by gene, so the sum runs in row order as for CSR
        sums += column
    return sums, np.count_nonzero(dense, axis=1).astype(np.int64)


class CellTotals:
    """The totals of X's rows, gathered as X is computed.

    ``x`` is what to write in place of X: for a Dask array, the same blocks, each recording its
    rows' totals as it passes through (by its ``block_info`` location); an in-memory matrix is
    counted at once.  The records are a side effect in this process: compute ``x`` with the
    threaded scheduler (:func:`write_with_totals` does).
    """

    def __init__(self, x) -> None:
        n_obs = x.shape[0]
        gene_blocks = x.numblocks[1] if hasattr(x, "map_blocks") else 1
        # One row of partial totals per block of genes: every block writes a slice of its own,
        # so threads never write the same element and need no lock, and a block computed twice
        # writes the same values again.
        self._sums = np.zeros((gene_blocks, n_obs), dtype=np.float64)
        self._nnz = np.zeros((gene_blocks, n_obs), dtype=np.int64)
        if hasattr(x, "map_blocks"):
            if any(np.isnan(size) for sizes in x.chunks for size in sizes):
                raise ChunkatlasError("X has blocks of unknown size: its cells cannot be counted")
            self._counted = np.zeros(x.numblocks, dtype=bool)
            # A name of its own spares Dask hashing the method's arrays into one.
            name = f"cell-totals-{uuid.uuid4().hex}"
            self.x = x.map_blocks(self._count, dtype=x.dtype, meta=x._meta, name=name)
        else:
            self._counted = np.ones((1, 1), dtype=bool)
            self._sums[0], self._nnz[0] = row_totals(x)
            self.x = x

    def _count(self, block, block_info=None):
        location = block_info[0]
        (start, stop), _ = location["array-location"]
        row_block, gene_block = location["chunk-location"]
        self._sums[gene_block, start:stop], self._nnz[gene_block, start:stop] = row_totals(block)
        self._counted[row_block, gene_block] = True
        return block

    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        """``raw_sum`` and ``nnz`` of every cell, once every block of X has been computed."""
        missed = np.argwhere(~self._counted)
        if missed.size:
            raise ChunkatlasError(
                f"{len(missed)} blocks of X were written but not counted (first: block "
                f"{tuple(map(int, missed[0]))}); X must be written with Dask's threaded scheduler"
            )
        sums = self._sums[0].copy()
        for partial in self._sums[1:]:  # blocks of genes in order
            sums += partial
        return sums, self._nnz.sum(axis=0)

    def obs_with_totals(self, obs: pd.DataFrame) -> pd.DataFrame:
        """``obs`` with ``raw_sum`` and ``nnz`` set from X; refused if it has either already
        with other values."""
        raw_sum, nnz = self.totals()
        for name, counted in zip(TOTAL_COLUMNS, (raw_sum, nnz), strict=True):
            if name in obs:
                check_given(obs, name, counted)
        return obs.assign(raw_sum=raw_sum, nnz=nnz)


def check_given(obs: pd.DataFrame, name: str, counted: np.ndarray) -> None:
    """Refuse an obs column ``name`` that differs from ``counted`` for any cell."""
    given = pd.to_numeric(obs[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    differs = np.flatnonzero(given != counted)
    if differs.size:
        first = differs[0]
        raise ChunkatlasError(
            f"obs {name} of cell {obs.index[first]!r} is {plain(obs[name].iloc[first])!r} but X "
            f"gives {plain(counted[first])!r} ({differs.size} of {len(obs)} cells differ): obs "
            f"does not describe this X"
        )


def plain(value):
    """A numpy scalar as the Python number it holds (whose repr is the number alone)."""
    return value.item() if isinstance(value, np.generic) else value


def write_with_totals(
    root,
    adata,
    write: Callable[[object, str, object], None] = write_elem,
    *,
    threads: int | None = None,
) -> None:
    """Write ``adata`` as the AnnData at ``root`` (with ``write(group, key, elem)``, default
    anndata's ``write_elem``), then its obs again with each cell's ``raw_sum`` and ``nnz``
    counted from X on its way to the store.  ``adata.X`` is replaced by the counting array.
    ``threads``: Dask threads that compute X's blocks (None: one per core)."""
    import dask

    totals = CellTotals(adata.X)
    if totals.x is not adata.X:
        adata.X = totals.x
    # The blocks' records are shared by threads only: a process or distributed scheduler would
    # lose them.
    with dask.config.set(scheduler="threads", num_workers=threads):
        write(root, "/", adata)
    write(root, "obs", totals.obs_with_totals(adata.obs))
