"""Re-writing a store: in a geometry (:func:`rechunk`), and its completion, consolidated
metadata and manifest (:func:`consolidate`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chunkatlas.store import Bucket


def rechunk(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    chunk: int,
    orientation: str,
    shard: int,
    codec: str,
    zarr_format: int,
) -> None:
    """Re-write the AnnData zarr store ``source`` as ``out``: ``orientation`` cells
    (cell-major) or genes (gene-major), ``chunk`` cells or genes per chunk, ``shard`` chunks
    per shard (1: unsharded), codec preset ``codec``."""
    from chunkatlas.rewrite import rechunk_store

    rechunk_store(
        source,
        out,
        chunk,
        shard=shard,
        codec=codec,
        orientation=orientation,
        zarr_format=zarr_format,
    )


def consolidate(
    store: str | os.PathLike,
    manifest: str | os.PathLike | None = None,
    *,
    provenance: Mapping | None = None,
    in_bucket: tuple[str, Bucket] | None = None,
) -> dict:
    """Consolidate ``store``'s metadata and write its manifest at ``manifest`` (None: beside
    the store, where ``analyze`` looks for it), recording ``provenance``; ``in_bucket`` (URL,
    bucket): ``store`` is a copy of the store there, consolidated there too.  Returns the
    manifest."""
    from chunkatlas.rewrite import consolidate_store
    from chunkatlas.store import manifest_location

    where = manifest_location(store) if manifest is None else manifest
    record = dict(provenance) if provenance is not None else None
    return consolidate_store(store, where, record, in_bucket=in_bucket)
