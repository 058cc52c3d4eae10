"""Consolidate a store's metadata, then write its manifest: the last step of every store."""

from __future__ import annotations

import os
import warnings

import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import (
    Bucket,
    build_manifest,
    directory_objects,
    open_anndata_group,
    write_json_atomic,
)

#: The object metadata consolidation writes, per zarr format: the root's zarr.json holds the
#: consolidated metadata in v3, .zmetadata in v2.
CONSOLIDATED_OBJECT = {3: "zarr.json", 2: ".zmetadata"}


def consolidate_store(
    store: str | os.PathLike,
    manifest_path: str | os.PathLike,
    provenance: dict | None = None,
    *,
    in_bucket: tuple[str, Bucket] | None = None,
) -> dict:
    """Consolidate the store's metadata, then write its manifest (the last step of a store).

    ``provenance`` (e.g. the config hash of the run) is recorded in the manifest.
    ``in_bucket`` (URL, bucket): ``store`` is a copy of the store at that URL (Snakemake
    retrieved it from the run's object store); the consolidated metadata is put there too,
    before the manifest is written, so a manifest never describes an unconsolidated store.
    """
    open_anndata_group(store)
    with warnings.catch_warnings():
        # Deliberate, as anndata does: a remote reader opens the whole store in one request.
        warnings.filterwarnings("ignore", "Consolidated metadata is currently not part")
        zarr.consolidate_metadata(str(store))
    # what a job that reads the consolidated store from an object store retrieves
    manifest = {**build_manifest(store), "moved": directory_objects(store), **(provenance or {})}
    if not manifest["consolidated"]:
        raise ChunkatlasError(f"metadata consolidation did not take effect: {store}")
    incomplete = [a["path"] for a in manifest["arrays"] if a["stored_chunks"] != a["n_objects"]]
    if incomplete:
        raise ChunkatlasError(f"store {store} is missing chunks of: {', '.join(incomplete)}")
    if in_bucket is not None:
        url, bucket = in_bucket
        name = CONSOLIDATED_OBJECT[manifest["zarr_format"]]
        bucket.put(os.path.join(store, name), f"{url.rstrip('/')}/{name}")
    write_json_atomic(manifest_path, manifest)
    return manifest
