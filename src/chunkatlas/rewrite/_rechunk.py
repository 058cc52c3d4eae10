"""The rechunking writer: a store re-written with the geometry of the rewrite package."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Mapping
from functools import partial

import numpy as np
import scipy.sparse as sp
import zarr
from anndata.experimental import write_dispatched

from chunkatlas.ingest import TOTAL_COLUMNS, write_with_totals
from chunkatlas.rewrite._gene_major import write_csc
from chunkatlas.rewrite._geometry import (
    CODECS,
    DEFAULT_CODEC,
    array_settings,
    check_geometry,
    check_orientation,
    column_settings,
    index_cast,
    integer_cast,
    matrix_chunks,
)
from chunkatlas.store import (
    DEFAULT_ZARR_FORMAT,
    is_matrix_element,
    is_sparse,
    matrix_shape,
    new_zarr_store,
    open_anndata_group,
    read_dask_backed,
    refuse_existing,
    sequential_reads,
)

# Cells per block read while rechunking: large enough to keep appends few, small enough to
# bound memory (a block of dense X is READ_ROWS x n_vars).
READ_ROWS = 4096


def matrices(group: zarr.Group) -> dict[str, zarr.Array | zarr.Group]:
    """X and every layer of an AnnData store, keyed by absolute path."""
    found = {"/X": group["X"]}
    if "layers" in group:
        found.update({f"/layers/{k}": v for k, v in group["layers"].members()})
    return found


def plan_chunks(group: zarr.Group, size: int, orientation: str = "cells") -> dict[str, tuple]:
    """On-disk chunks for X and every layer of an AnnData store, keyed by absolute path."""
    return {
        path: matrix_chunks(
            matrix_shape(elem),
            size,
            nnz=int(elem["data"].shape[0]) if is_sparse(elem) else None,
            orientation=orientation,
        )
        for path, elem in matrices(group).items()
    }


def plan_columns(group: zarr.Group) -> set[str]:
    """Every 1-D array under obs and var (columns, the index, categorical codes and
    categories, nullable values and masks) and the cell totals every store gets
    (:mod:`chunkatlas.ingest._cell_totals`), by absolute path."""
    planned = {f"/obs/{name}" for name in TOTAL_COLUMNS}
    for axis in ("obs", "var"):
        for name, member in group[axis].members(max_depth=None):
            if isinstance(member, zarr.Array) and member.ndim == 1:
                planned.add(f"/{axis}/{name}")
    return planned


def plan_casts(
    group: zarr.Group, codec: str, orientation: str = "cells"
) -> dict[str, np.dtype | None]:
    """For presets that cast: the integer type each matrix's values can be stored as (the
    gene-major writer finds it in its own first pass over a sparse matrix)."""
    if not CODECS[codec].cast:
        return {}
    return {
        path: integer_cast(elem["data"] if is_sparse(elem) else elem)
        for path, elem in matrices(group).items()
        if not (is_sparse(elem) and orientation == "genes")
    }


def chunk_callback(
    planned: Mapping[str, tuple],
    columns: Collection[str] = (),
    *,
    shard: int = 1,
    codec: str = DEFAULT_CODEC,
    casts: Mapping[str, np.dtype | None] | None = None,
    orientation: str = "cells",
) -> Callable[..., None]:
    """A ``write_dispatched`` callback that gives each planned array its chunks, shards and
    codecs: X and layers (``planned`` from :func:`plan_chunks`), and obs and var arrays
    (``columns``, from :func:`plan_columns`) each in one object, whatever X's geometry
    (:func:`~chunkatlas.rewrite._geometry.column_settings`).  ``casts`` from
    :func:`plan_casts`.

    Other elements are written as anndata would.  Planned chunks come from the whole matrix:
    anndata writes a Dask sparse matrix block by block, calling back once per block; CSR
    matrices are written here (anndata's writer gives data, indices and indptr one codec), as
    CSC by the gene-major writer for ``orientation="genes"``.
    """
    casts = casts or {}

    def callback(func, store, elem_name, elem, *, dataset_kwargs, iospec):
        path = f"{store.name.rstrip('/')}/{elem_name}"
        if path in columns:
            chosen = column_settings(codec, store.metadata.zarr_format, len(elem))
            return func(store, elem_name, elem, dataset_kwargs={**dataset_kwargs, **chosen})
        if path not in planned:
            return func(store, elem_name, elem, dataset_kwargs=dataset_kwargs)
        chunks = planned[path]
        settings = partial(array_settings, codec, store.metadata.zarr_format, shard=shard)
        cast = casts.get(path)
        if is_matrix_element(path) and iospec.encoding_type == "csr_matrix":
            if orientation == "genes":
                return write_csc(
                    store,
                    elem_name,
                    elem.shape,
                    np.dtype(elem.dtype),
                    partial(csr_blocks, elem),
                    chunks,
                    settings,
                    cast_values=CODECS[codec].cast,
                )
            return write_csr(store, elem_name, elem, chunks, partial(settings, cast=cast))
        if is_matrix_element(path) and iospec.encoding_type == "array":
            chosen = settings(chunks, elem.shape, dtype=elem.dtype, role="values", cast=cast)
            if hasattr(elem, "rechunk"):
                # Dask blocks aligned with stored objects: two tasks never rewrite one shard.
                elem = elem.rechunk(chosen.get("shards", chunks))
        else:  # CSC: one setting for data, indices and indptr
            chosen = settings(chunks, None)
        return func(store, elem_name, elem, dataset_kwargs={**dataset_kwargs, **chosen})

    return callback


def write_csr(
    parent: zarr.Group, name: str, matrix, chunks: tuple[int], settings: Callable[..., dict]
) -> None:
    """Write ``matrix`` (a Dask array of CSR blocks, or a CSR matrix) as anndata's csr_matrix
    group, one block of rows at a time; ``settings(chunks, shape, dtype=, role=, cast=)`` gives
    each array's geometry and codecs.  Indices and indptr are int64, as anndata writes them
    (presets that cast store indices narrower: :func:`~chunkatlas.rewrite._geometry.index_cast`)."""
    n_obs = matrix.shape[0]
    group = parent.create_group(name)
    group.attrs.update(
        {"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": list(matrix.shape)}
    )

    def create(key, shape, dtype, role, **cast):
        known = None if shape == (0,) else shape  # data and indices grow block by block
        kwargs = settings(chunks, known, dtype=np.dtype(dtype), role=role, **cast)
        return group.create_array(key, shape=shape, dtype=dtype, **kwargs)

    data = create("data", (0,), matrix.dtype, "values")
    indices = create("indices", (0,), np.int64, "indices", cast=index_cast(matrix.shape[1]))
    indptr = create("indptr", (n_obs + 1,), np.int64, "index")
    indptr[0] = 0
    row = nnz = 0
    for block in csr_blocks(matrix):
        end = nnz + block.nnz
        for array, values in ((data, block.data), (indices, block.indices)):
            array.resize((end,))
            array[nnz:end] = values
        indptr[row + 1 : row + 1 + block.shape[0]] = block.indptr[1:].astype(np.int64) + nnz
        row, nnz = row + block.shape[0], end


def csr_blocks(matrix) -> Iterator[sp.csr_matrix]:
    """Blocks of whole rows of a Dask CSR array (one at a time), or the matrix itself."""
    if not hasattr(matrix, "blocks"):
        yield sp.csr_matrix(matrix)
        return
    matrix = matrix.rechunk({1: -1})
    for i in range(matrix.numblocks[0]):
        yield sp.csr_matrix(matrix.blocks[i].compute())


def rechunk_store(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    size: int,
    *,
    shard: int = 1,
    codec: str = DEFAULT_CODEC,
    orientation: str = "cells",
    read_rows: int | None = None,
    zarr_format: int = DEFAULT_ZARR_FORMAT,
) -> None:
    """Re-write the AnnData store ``source`` as ``dest`` with the geometry of
    :mod:`chunkatlas.rewrite._geometry`: X and layers cell-major (CSR, or dense chunks of whole
    cells) or gene-major (``orientation="genes"``: CSC, or dense chunks of whole genes), chunked
    by ``size`` cells or genes, obs and var arrays each in one object, ``shard`` chunks
    per shard (1: unsharded; zarr v3 only) and the ``codec`` preset.

    Matrices stream through Dask, ``read_rows`` cells at a time (default: the larger of
    ``size`` and READ_ROWS), so memory stays bounded by one block whatever the store's size,
    and each chunk of the source is decoded once per pass (the chunk a block ends in is kept
    for the next, :func:`~chunkatlas.store.sequential_reads`);
    a dense matrix is written one whole shard per task (memory: a shard).  The ``packed``
    preset first reads each matrix's values once to choose their integer type.  A sparse
    matrix written gene-major takes two passes over its cells and spills them by groups of
    genes to local disk (:mod:`chunkatlas.rewrite._gene_major`): memory stays bounded too.
    obs gets each cell's ``raw_sum`` and ``nnz``, counted from X as it streams (and checked
    against the source's own, :mod:`chunkatlas.ingest._cell_totals`).  ``dest`` appears only when
    complete.
    """
    check_geometry(shard, codec, zarr_format)
    check_orientation(orientation)
    refuse_existing(dest)  # before scanning the values
    group = open_anndata_group(source)
    planned = plan_chunks(group, size, orientation)
    casts = plan_casts(group, codec, orientation)
    callback = chunk_callback(
        planned, plan_columns(group), shard=shard, codec=codec, casts=casts, orientation=orientation
    )
    adata = read_dask_backed(source, read_rows or max(size, READ_ROWS))
    with new_zarr_store(dest, zarr_format) as out, sequential_reads():
        # Every chunk is materialised, even an all-zero one, so "missing" always means lost.
        with zarr.config.set({"array.write_empty_chunks": True}):
            write_with_totals(out, adata, partial(write_dispatched, callback=callback))
