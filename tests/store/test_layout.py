"""The layout of AnnData stores (chunkatlas.store._layout): which elements are matrices, their
shapes, sparse or dense, in zarr and HDF5 alike; Snakemake's marker file silenced."""

from __future__ import annotations

import h5py
import pytest
import scipy.sparse as sp
import zarr

from chunkatlas.store import (
    is_matrix_element,
    is_sparse,
    matrix_shape,
)


@pytest.mark.parametrize(
    ("path", "matrix"),
    [
        ("X", True),
        ("/X", True),
        ("layers/counts", True),
        ("/layers/dense", True),
        ("layers", False),
        ("Xenium", False),
        ("raw/X", False),
        ("obsm/X_pca", False),
        ("obs", False),
        ("var/_index", False),
    ],
)
def test_x_and_each_layer_are_the_matrix_elements(path, matrix):
    assert is_matrix_element(path) is matrix


def test_shape_and_sparsity_of_stored_matrices(small, small_store):
    group = zarr.open_group(small_store, mode="r")
    assert is_sparse(group["X"]) and not is_sparse(group["layers/dense"])
    assert matrix_shape(group["X"]) == (60, 12)  # from the sparse group's shape attribute
    assert matrix_shape(group["layers/dense"]) == (60, 12)
    assert not is_sparse(group["obs"])  # a dataframe is a group too, not a matrix


def test_a_csc_matrix_is_sparse_with_its_own_shape(small, tmp_path):
    from anndata.io import write_elem

    group = zarr.open_group(tmp_path / "m.zarr", mode="w")
    write_elem(group, "csc", sp.csc_matrix(small.X[:7, :5]))
    assert is_sparse(group["csc"]) and matrix_shape(group["csc"]) == (7, 5)


def test_shape_and_sparsity_in_an_h5ad_file(small, tmp_path):
    small.write_h5ad(tmp_path / "small.h5ad")
    with h5py.File(tmp_path / "small.h5ad", "r") as f:
        assert is_sparse(f["X"]) and matrix_shape(f["X"]) == (60, 12)
        assert not is_sparse(f["layers/dense"]) and matrix_shape(f["layers/dense"]) == (60, 12)
