"""Small AnnData stores written by anndata alone (nothing of chunkatlas writes them), in each zarr
format, and copies of them to damage."""

from __future__ import annotations

import shutil

import pytest

from ..support.stores import small_anndata, write_small_store


@pytest.fixture(scope="session")
def small():
    """The AnnData the small stores hold, in memory."""
    return small_anndata()


@pytest.fixture(scope="session", params=[2, 3], ids=["zarr-v2", "zarr-v3"])
def small_store(request, small, tmp_path_factory):
    """``small`` as a consolidated zarr store (read only: copy it to change it)."""
    where = tmp_path_factory.mktemp(f"small-v{request.param}")
    return write_small_store(where / "store.zarr", small, request.param)


@pytest.fixture
def store_copy(small_store, tmp_path):
    """A copy of ``small_store`` that a test may damage."""
    copy = tmp_path / "store.zarr"
    shutil.copytree(small_store, copy)
    return copy
