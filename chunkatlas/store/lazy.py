"""Open AnnData zarr stores with X and layers as Dask arrays, everything else in memory."""

from __future__ import annotations

import os

import anndata as ad
import zarr
from anndata.experimental import read_dispatched, read_elem_lazy

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store.layout import is_matrix_element, is_sparse, matrix_shape, open_anndata_group


def read_lazy(
    path: str | os.PathLike | zarr.Group, rows: int, *, dense_chunks: str = "rows"
) -> ad.AnnData:
    """Read an AnnData store with X and layers as Dask arrays of ``rows`` cells per task.

    Sparse matrices become Dask arrays of scipy CSR chunks spanning all genes, which is what
    scanpy's Dask code paths need; obs, var, obsm, uns and the rest are read into memory.
    Dense matrices are split the same way, or with ``dense_chunks="disk"`` along their on-disk
    chunks (so that reading one gene of a gene-chunked store touches one chunk).
    ``path`` may be an open zarr or h5py group (a remote store: :mod:`chunkatlas.remote.reader`).
    """
    group = path if not isinstance(path, str | os.PathLike) else open_anndata_group(path)

    def callback(func, elem_name, elem, iospec):
        if is_matrix_element(elem_name):
            n_obs, n_vars = matrix_shape(elem)
            if dense_chunks == "disk" and not is_sparse(elem):
                return read_elem_lazy(elem, chunks=elem.chunks)
            return read_elem_lazy(elem, chunks=(min(rows, max(n_obs, 1)), n_vars))
        return func(elem)

    adata = read_dispatched(group, callback=callback)
    check_unique_names(adata.obs, adata.var, where=path)
    return adata


def check_unique_names(obs, var, *, where) -> None:
    """Refuse duplicate obs or var names: results are keyed by them."""
    for axis, names in (("obs", obs.index), ("var", var.index)):
        if not names.is_unique:
            first = names[names.duplicated()][0]
            raise ChunkatlasError(
                f"store {where} has duplicate {axis} names (first: {first!r}); "
                f"{axis} names must be unique"
            )
