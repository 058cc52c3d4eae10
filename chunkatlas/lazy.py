"""Open AnnData zarr stores with X and layers as Dask arrays, everything else in memory."""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad
import zarr
from anndata.experimental import read_dispatched, read_elem_lazy

from chunkatlas.errors import ChunkatlasError


def is_matrix_element(path: str) -> bool:
    """True for the elements whose chunking chunkatlas tunes: X and every layer."""
    path = "/" + path.lstrip("/")
    return path == "/X" or path.startswith("/layers/")


def open_anndata_group(path: str | os.PathLike) -> zarr.Group:
    """Open ``path`` read-only as the root group of an AnnData zarr store, or fail clearly."""
    if "://" in str(path):
        raise ChunkatlasError(f"remote stores are not readable yet: {path} (give a local path)")
    where = Path(path)
    if not where.exists():
        raise ChunkatlasError(f"store not found: {where}")
    try:
        group = zarr.open_group(where, mode="r")
    except Exception as err:  # zarr raises several types for "not a group"
        raise ChunkatlasError(f"not a zarr group: {where} ({type(err).__name__})") from err
    if group.attrs.get("encoding-type") != "anndata":
        raise ChunkatlasError(f"not an AnnData store (no encoding-type 'anndata'): {where}")
    if "X" not in group:
        raise ChunkatlasError(f"AnnData store has no X: {where}")
    return group


def matrix_shape(elem) -> tuple[int, int]:
    """Shape of a stored matrix, dense (an array) or sparse (a group with a shape attribute)."""
    return tuple(elem.attrs["shape"]) if is_sparse(elem) else tuple(elem.shape)


def is_sparse(elem) -> bool:
    """A stored sparse matrix is a group (zarr or HDF5); a dense one is an array."""
    return elem.attrs.get("encoding-type") in ("csr_matrix", "csc_matrix")


def read_lazy(
    path: str | os.PathLike | zarr.Group, rows: int, *, dense_chunks: str = "rows"
) -> ad.AnnData:
    """Read an AnnData store with X and layers as Dask arrays of ``rows`` cells per task.

    Sparse matrices become Dask arrays of scipy CSR chunks spanning all genes, which is what
    scanpy's Dask code paths need; obs, var, obsm, uns and the rest are read into memory.
    Dense matrices are split the same way, or with ``dense_chunks="disk"`` along their on-disk
    chunks (so that reading one gene of a gene-chunked store touches one chunk).
    ``path`` may be an open zarr or h5py group (a remote store, see :mod:`chunkatlas.remote`).
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
