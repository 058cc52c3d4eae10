"""The layout of AnnData zarr stores, read with zarr alone.

No anndata import here: the analysis driver and the manifest check open stores without paying
for it (anndata and pandas take about a second to import).
"""

from __future__ import annotations

import os
from pathlib import Path

import zarr

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
