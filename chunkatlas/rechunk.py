"""The chunk policy for X and layers, and the rechunking writer that applies it."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping

import zarr
from anndata.experimental import write_dispatched

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store.layout import is_matrix_element, is_sparse, matrix_shape, open_anndata_group
from chunkatlas.store.lazy import read_lazy
from chunkatlas.store.write import DEFAULT_ZARR_FORMAT, new_zarr_store

DENSE_AXES = ("obs", "var")
# Cells per block read while rechunking: large enough to keep appends few, small enough to
# bound memory (a block of dense X is READ_ROWS x n_vars).
READ_ROWS = 4096


def matrix_chunks(
    shape: tuple[int, int], size: int, *, nnz: int | None = None, dense_axis: str = "obs"
) -> tuple[int, ...]:
    """On-disk chunks for one matrix.

    Parameters
    ----------
    shape
        (n_obs, n_vars) of the matrix.
    size
        The chunk size: cells per chunk, or genes per chunk for dense matrices with
        ``dense_axis="var"``.
    nnz
        Stored values of a sparse CSR matrix; None for a dense one.  The 1-D data and indices
        arrays are chunked so that one chunk holds about ``size`` cells on average.
    dense_axis
        "obs": dense chunks are (size, n_vars); "var": (n_obs, size), as in the remote-zarr
        tutorial where one gene is one request.
    """
    if size < 1:
        raise ChunkatlasError(f"chunk size must be a positive integer, got {size}")
    if dense_axis not in DENSE_AXES:
        raise ChunkatlasError(f"dense_axis must be one of {DENSE_AXES}, got {dense_axis!r}")
    n_obs, n_vars = shape
    if nnz is not None:
        per_cell = nnz / max(n_obs, 1)
        return (max(1, math.ceil(per_cell * size)),)
    if dense_axis == "obs":
        return (max(1, min(size, n_obs)), max(1, n_vars))
    return (max(1, n_obs), max(1, min(size, n_vars)))


def plan_chunks(group: zarr.Group, size: int, dense_axis: str = "obs") -> dict[str, tuple]:
    """On-disk chunks for X and every layer of an AnnData store, keyed by absolute path."""
    matrices = {"/X": group["X"]}
    if "layers" in group:
        matrices.update({f"/layers/{k}": v for k, v in group["layers"].members()})
    return {
        path: matrix_chunks(
            matrix_shape(elem),
            size,
            nnz=int(elem["data"].shape[0]) if is_sparse(elem) else None,
            dense_axis=dense_axis,
        )
        for path, elem in matrices.items()
    }


def chunk_callback(planned: Mapping[str, tuple]) -> Callable[..., None]:
    """A ``write_dispatched`` callback that gives X and every layer its planned chunks.

    Other elements are written as anndata would.  Planned chunks come from the whole matrix:
    anndata writes a Dask sparse matrix block by block, calling back once per block.
    """

    def callback(func, store, elem_name, elem, *, dataset_kwargs, iospec):
        path = f"{store.name.rstrip('/')}/{elem_name}"
        if is_matrix_element(path) and path in planned:
            chunks = planned[path]
            if len(chunks) == 2 and hasattr(elem, "rechunk"):
                # Dask blocks aligned with zarr chunks: each task writes whole chunks.
                elem = elem.rechunk(chunks)
            dataset_kwargs = {**dataset_kwargs, "chunks": chunks}
        func(store, elem_name, elem, dataset_kwargs=dataset_kwargs)

    return callback


def rechunk_store(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    size: int,
    *,
    dense_axis: str = "obs",
    read_rows: int | None = None,
    zarr_format: int = DEFAULT_ZARR_FORMAT,
) -> None:
    """Re-write the AnnData store ``source`` as ``dest`` with X and layers chunked by ``size``.

    Matrices stream through Dask, ``read_rows`` cells at a time (default: the larger of
    ``size`` and READ_ROWS), so memory stays bounded by one block whatever the store's size.
    ``dest`` appears only when complete.
    """
    planned = plan_chunks(open_anndata_group(source), size, dense_axis)
    adata = read_lazy(source, read_rows or max(size, READ_ROWS))
    with new_zarr_store(dest, zarr_format) as out:
        # Every chunk is materialised, even an all-zero one, so "missing" always means lost.
        with zarr.config.set({"array.write_empty_chunks": True}):
            write_dispatched(out, "/", adata, callback=chunk_callback(planned))
