"""Open AnnData zarr stores with X and layers as Dask arrays, everything else in memory.

anndata is imported when a store is read, not with the store package: the analysis driver and
the manifest check open stores without paying for it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store._chunks import read_checked, read_span
from chunkatlas.store._layout import is_matrix_element, is_sparse, matrix_shape
from chunkatlas.store._location import StoreLocation
from chunkatlas.store._open import open_anndata_group

if TYPE_CHECKING:
    import anndata as ad


def read_dask_backed(
    path: str | os.PathLike | StoreLocation | zarr.Group, rows: int, *, dense_chunks: str = "rows"
) -> ad.AnnData:
    """Read an AnnData store with X and layers as Dask arrays of ``rows`` cells per task.

    Sparse matrices become Dask arrays of scipy CSR chunks spanning all genes, which is what
    scanpy's Dask code paths need; obs, var, obsm, uns and the rest are read into memory.
    Dense matrices are split the same way, or with ``dense_chunks="disk"`` along their on-disk
    chunks (so that reading one gene of a gene-chunked store touches one chunk).
    ``path`` is a local path, a URL or a :class:`StoreLocation` (the tasks carry the location
    and each Dask worker opens the store itself), or an open zarr group (the tasks carry it).
    A chunk that cannot be decoded fails the computation with one line naming it.
    """
    if isinstance(path, zarr.Group):
        group, where, location = path, path.store, None
    else:
        location = StoreLocation.of(path)
        group, where = open_anndata_group(location), location

    def callback(func, elem_name, elem, iospec):
        if is_matrix_element(elem_name):
            n_obs, n_vars = matrix_shape(elem)
            source = elem if location is None else StoredElement(location, elem.path)
            if dense_chunks == "disk" and not is_sparse(elem):
                return lazy_matrix(elem, elem.chunks, where, source)
            return lazy_matrix(elem, (min(rows, max(n_obs, 1)), n_vars), where, source)
        return func(elem)

    from anndata.experimental import read_dispatched

    adata = read_dispatched(group, callback=callback)
    check_unique_names(adata.obs, adata.var, where=path)
    return adata


@dataclass(frozen=True)
class StoredElement:
    """An element of the store at ``location``, opened where it is read."""

    location: StoreLocation
    path: str

    def open(self) -> zarr.Array | zarr.Group:
        return self.location.open()[self.path]


def refuse_gene_major(elem: zarr.Array | zarr.Group, where) -> None:
    """Blocks of cells of a gene-major (CSC) matrix would each read every object of it: one
    line that says to read the cell-major store instead."""
    if is_sparse(elem) and elem.attrs["encoding-type"] == "csc_matrix":
        name = elem.name.strip("/") or "X"
        raise ChunkatlasError(
            f"{name} of {where} is gene-major (csc_matrix): blocks of cells would read all of it; "
            "analyse or re-write the cell-major store (chunkatlas rechunk FETCHED STORE "
            "--orientation cells)"
        )


def lazy_matrix(
    elem: zarr.Array | zarr.Group,
    chunks: tuple[int, int],
    where,
    source: zarr.Array | zarr.Group | StoredElement | None = None,
):
    """A stored dense or CSR matrix as a Dask array of ``chunks``-sized blocks (CSR blocks span
    all genes), read through :func:`read_checked` (anndata's own lazy reader would let a damaged
    chunk end in a codec's traceback).  The tasks read from ``source`` (default: ``elem``)."""
    import dask.array as da
    import scipy.sparse as sp

    shape = matrix_shape(elem)
    if is_sparse(elem):
        refuse_gene_major(elem, where)
        dtype = elem["data"].dtype
        meta = sp.csr_matrix((0, 0), dtype=dtype)
    else:
        dtype, meta = elem.dtype, np.empty((0, 0), dtype=elem.dtype)
    return da.map_blocks(
        partial(read_block, elem if source is None else source, where),
        chunks=da.core.normalize_chunks(chunks, shape),
        dtype=dtype,
        meta=meta,
    )


def read_block(elem: zarr.Array | zarr.Group | StoredElement, where, block_info=None):
    """One block of a stored matrix (called by Dask with the block's location)."""
    if isinstance(elem, StoredElement):
        elem = elem.open()
    (start, stop), (first, last) = block_info[None]["array-location"]
    if not is_sparse(elem):
        return read_checked(elem, (slice(start, stop), slice(first, last)), where)
    import scipy.sparse as sp

    indptr = read_span(elem["indptr"], start, stop + 1, where)
    low, high = int(indptr[0]), int(indptr[-1])
    data, indices = (read_span(elem[name], low, high, where) for name in ("data", "indices"))
    return sp.csr_matrix((data, indices, indptr - indptr[0]), shape=(stop - start, last - first))


def check_unique_names(obs, var, *, where) -> None:
    """Refuse duplicate obs or var names: results are keyed by them."""
    for axis, names in (("obs", obs.index), ("var", var.index)):
        if not names.is_unique:
            first = names[names.duplicated()][0]
            raise ChunkatlasError(
                f"store {where} has duplicate {axis} names (first: {first!r}); "
                f"{axis} names must be unique"
            )
