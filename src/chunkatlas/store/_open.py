"""Opening AnnData zarr stores, local or remote, with one line for what is not one.

No anndata import at module level: the analysis driver and the manifest check open stores
without paying for it (anndata and pandas take about a second to import).
"""

from __future__ import annotations

import os
from pathlib import Path

import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store._location import StoreLocation


def open_anndata_group(
    path: str | os.PathLike | StoreLocation, *, need_x: bool = True
) -> zarr.Group:
    """Open ``path`` read-only as the root group of an AnnData zarr store, or fail clearly.

    ``path`` may be an http(s)/s3 URL or a :class:`StoreLocation` (a remote store must have
    consolidated metadata); every read is counted (:mod:`chunkatlas.store._counting`).
    """
    location = StoreLocation.of(path)
    if location.is_remote:
        return location.open()  # refuses what is not an AnnData store with X
    where = Path(location.url if isinstance(path, StoreLocation) else path)  # as given
    if not where.exists():
        raise ChunkatlasError(f"store not found: {where}")
    if where.is_file() and where.suffix in (".h5ad", ".h5"):
        raise ChunkatlasError(
            f"{where} is an h5ad file; analysis reads AnnData zarr stores: convert it with "
            f"`chunkatlas fetch {where} all {where.with_suffix('.zarr')}`"
        )
    try:
        group = location.open()
    except Exception as err:  # zarr raises several types for "not a group"
        raise ChunkatlasError(f"not a zarr group: {where} ({type(err).__name__})") from err
    if group.attrs.get("encoding-type") != "anndata":
        raise ChunkatlasError(f"not an AnnData store (no encoding-type 'anndata'): {where}")
    if need_x and "X" not in group:
        raise ChunkatlasError(f"AnnData store has no X: {where}")
    return group


def obs_columns(path: str | os.PathLike | StoreLocation) -> list[str]:
    """The obs column names of an AnnData zarr store, from its metadata alone."""
    return list(open_anndata_group(path)["obs"].attrs.get("column-order", []))


def check_obs_column(path: str | os.PathLike | StoreLocation, column: str, option: str) -> None:
    """Refuse ``column`` (given as ``option``) unless the store's obs has it."""
    columns = obs_columns(path)
    if column not in columns:
        raise ChunkatlasError(
            f"{option} {column!r} is not an obs column of {path}; it has: {', '.join(columns)}"
        )


def read_store(path: str | os.PathLike):
    """``anndata.read_zarr`` of a store the workflow wrote, in memory."""
    import anndata as ad

    open_anndata_group(path, need_x=False)  # one line for what is not an AnnData store
    return ad.read_zarr(path)


def read_elements(path: str | os.PathLike, *keys: str) -> list:
    """Some elements of a store the workflow wrote (e.g. "var", "uns"), read as
    :func:`read_store` reads them, and nothing else (a result's obs and X_pca grow with the
    cells)."""
    from anndata.io import read_elem

    group = open_anndata_group(path, need_x=False)
    return [read_elem(group[key]) for key in keys]
