"""Opening AnnData zarr stores (chunkatlas.store._open): the store's root group, or one line
saying what the path is instead; obs columns checked from metadata; whole stores and single
elements read."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import (
    StoreLocation,
    check_obs_column,
    open_anndata_group,
    read_elements,
    read_store,
)


def refusal(path, **options) -> str:
    with pytest.raises(ChunkatlasError) as caught:
        open_anndata_group(path, **options)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_an_anndata_store_opens_read_only_as_its_root_group(small_store):
    for given in (small_store, str(small_store), StoreLocation.of(small_store)):
        group = open_anndata_group(given)
        assert group.attrs["encoding-type"] == "anndata"
        assert {"X", "obs", "var", "layers"} <= set(group.keys())
        assert group.read_only
        with pytest.raises(Exception):  # noqa: B017 - zarr's own error for a read-only store
            group.create_array("new", shape=(1,), dtype="i4")


def test_a_missing_path_is_not_found(tmp_path):
    assert refusal(tmp_path / "nowhere.zarr") == f"store not found: {tmp_path / 'nowhere.zarr'}"


def test_a_folder_that_is_not_zarr_is_not_a_zarr_group(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a store")
    assert refusal(tmp_path / "notes").startswith(f"not a zarr group: {tmp_path / 'notes'} (")


def test_an_h5ad_file_is_refused_with_the_command_that_converts_it(small, tmp_path):
    small.write_h5ad(tmp_path / "cells.h5ad")
    message = refusal(tmp_path / "cells.h5ad")
    assert message.startswith(f"{tmp_path / 'cells.h5ad'} is an h5ad file; ")
    assert message.endswith(
        f"`chunkatlas fetch {tmp_path / 'cells.h5ad'} all {tmp_path / 'cells.zarr'}`"
    )


def test_a_zarr_group_that_is_not_anndata_is_refused(tmp_path):
    group = zarr.open_group(tmp_path / "plain.zarr", mode="w")
    group.create_array("X", shape=(3, 2), dtype="f4")
    assert refusal(tmp_path / "plain.zarr") == (
        f"not an AnnData store (no encoding-type 'anndata'): {tmp_path / 'plain.zarr'}"
    )


def test_a_store_without_x_is_refused_unless_x_is_not_needed(small, tmp_path):
    ad.AnnData(obs=small.obs, var=small.var).write_zarr(tmp_path / "nox.zarr")
    assert refusal(tmp_path / "nox.zarr") == f"AnnData store has no X: {tmp_path / 'nox.zarr'}"
    group = open_anndata_group(tmp_path / "nox.zarr", need_x=False)
    assert "X" not in group and "obs" in group


def test_an_obs_column_is_checked_from_the_metadata(small_store):
    check_obs_column(small_store, "tissue", "--label-key")
    with pytest.raises(ChunkatlasError) as caught:
        check_obs_column(small_store, "colour", "--label-key")
    assert str(caught.value) == (
        f"--label-key 'colour' is not an obs column of {small_store}; it has: tissue"
    )


def test_read_store_reads_the_whole_store_in_memory(small, small_store):
    adata = read_store(small_store)
    assert (adata.X != small.X).nnz == 0
    np.testing.assert_array_equal(adata.layers["dense"], small.layers["dense"])
    pd.testing.assert_frame_equal(adata.obs, small.obs)
    pd.testing.assert_frame_equal(adata.var, small.var)


def test_read_store_refuses_what_is_not_an_anndata_store(tmp_path):
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    with pytest.raises(ChunkatlasError, match="not an AnnData store"):
        read_store(tmp_path / "plain.zarr")


def test_read_elements_reads_the_elements_asked_for(small, small_store):
    var, obs = read_elements(small_store, "var", "obs")
    pd.testing.assert_frame_equal(var, small.var)
    pd.testing.assert_frame_equal(obs, small.obs)
