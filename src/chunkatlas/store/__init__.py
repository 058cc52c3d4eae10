"""The bottom layer: a store's bytes and address.

Everything chunkatlas knows about an AnnData zarr store as stored objects, and nothing about
what is done with it: its layout (:mod:`._layout`: matrix elements, shapes), opening it local or
remote (:mod:`._open`, :mod:`._location`: a path or URL each Dask worker opens itself), in a
bucket (:mod:`._bucket`), atomic
writes (:mod:`._write`), the manifest that records and checks every stored object
(:mod:`._manifest`), the reader that guards remote reads against it (:mod:`._guarded`), reads
that name a damaged chunk (:mod:`._chunks`), counting requests and bytes (:mod:`._counting`),
X and layers as Dask arrays (:mod:`._lazy`) of cells per task from the store's geometry
(:mod:`._tasks`), and masking credentials (:mod:`._secrets`).

It imports nothing of chunkatlas but :mod:`chunkatlas.errors` and :mod:`chunkatlas._version`;
``tests/test_import_layers.py`` fails the day that changes."""

from __future__ import annotations

from chunkatlas.store._bucket import (
    Bucket,
    directory_objects,
    read_objects_record,
    write_objects_record,
)
from chunkatlas.store._chunks import read_checked, sequential_reads, stored_grid
from chunkatlas.store._counting import Reads, take_reads
from chunkatlas.store._guarded import (
    PART_BYTES,
    RemoteSettings,
    open_remote_group,
    storage_options_for,
)
from chunkatlas.store._layout import (
    is_matrix_element,
    is_sparse,
    matrix_shape,
)
from chunkatlas.store._lazy import check_unique_names, read_dask_backed
from chunkatlas.store._location import StoreLocation, is_remote, open_on_workers
from chunkatlas.store._manifest import (
    build_manifest,
    load_manifest,
    manifest_location,
    verify_store,
)
from chunkatlas.store._open import check_obs_column, open_anndata_group, read_elements, read_store
from chunkatlas.store._secrets import redact
from chunkatlas.store._tasks import XGeometry, objects_per_pass, cells_per_task_of
from chunkatlas.store._write import (
    DEFAULT_ZARR_FORMAT,
    atomic_directory,
    new_zarr_store,
    refuse_existing,
    write_json_atomic,
)

__all__ = [
    "Bucket",
    "DEFAULT_ZARR_FORMAT",
    "PART_BYTES",
    "Reads",
    "XGeometry",
    "RemoteSettings",
    "StoreLocation",
    "atomic_directory",
    "build_manifest",
    "check_obs_column",
    "check_unique_names",
    "directory_objects",
    "is_matrix_element",
    "is_remote",
    "is_sparse",
    "load_manifest",
    "manifest_location",
    "matrix_shape",
    "new_zarr_store",
    "objects_per_pass",
    "open_anndata_group",
    "open_on_workers",
    "open_remote_group",
    "read_checked",
    "read_elements",
    "read_objects_record",
    "read_dask_backed",
    "read_store",
    "redact",
    "sequential_reads",
    "stored_grid",
    "refuse_existing",
    "storage_options_for",
    "take_reads",
    "cells_per_task_of",
    "verify_store",
    "write_json_atomic",
    "write_objects_record",
]
