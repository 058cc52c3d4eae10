"""The layout of AnnData zarr stores, read with zarr alone: which elements are matrices, their
shapes."""

from __future__ import annotations


def is_matrix_element(path: str) -> bool:
    """True for the elements whose chunking chunkatlas tunes: X and every layer."""
    path = "/" + path.lstrip("/")
    return path == "/X" or path.startswith("/layers/")


def matrix_shape(elem) -> tuple[int, int]:
    """Shape of a stored matrix, dense (an array) or sparse (a group with a shape attribute)."""
    return tuple(elem.attrs["shape"]) if is_sparse(elem) else tuple(elem.shape)


def is_sparse(elem) -> bool:
    """A stored sparse matrix is a group (zarr or HDF5); a dense one is an array."""
    return elem.attrs.get("encoding-type") in ("csr_matrix", "csc_matrix")
