"""Consolidate a store's metadata, then write its manifest: the last step of every store."""

from __future__ import annotations

import os
import warnings

import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import (
    build_manifest,
    open_anndata_group,
    without_snakemake_marker_warnings,
    write_json_atomic,
)


def consolidate_store(
    store: str | os.PathLike, manifest_path: str | os.PathLike, provenance: dict | None = None
) -> dict:
    """Consolidate the store's metadata, then write its manifest (the last step of a store).

    ``provenance`` (e.g. the config hash of the run) is recorded in the manifest.
    """
    open_anndata_group(store)
    with without_snakemake_marker_warnings(), warnings.catch_warnings():
        # Deliberate, as anndata does: a remote reader opens the whole store in one request.
        warnings.filterwarnings("ignore", "Consolidated metadata is currently not part")
        zarr.consolidate_metadata(str(store))
    manifest = {**build_manifest(store), **(provenance or {})}
    if not manifest["consolidated"]:
        raise ChunkatlasError(f"metadata consolidation did not take effect: {store}")
    incomplete = [a["path"] for a in manifest["arrays"] if a["stored_chunks"] != a["n_objects"]]
    if incomplete:
        raise ChunkatlasError(f"store {store} is missing chunks of: {', '.join(incomplete)}")
    write_json_atomic(manifest_path, manifest)
    return manifest
