"""Fetching a source served over HTTP (nginx on loopback): an AnnData zarr store and an h5ad."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from chunkatlas.ingest._fetch import fetch_anndata
from chunkatlas.study import nginx_serving

from ..support.remote import FAST, local_x


@pytest.mark.servers
def test_fetch_reads_an_anndata_store_over_http(consolidated, tmp_path):
    store, _ = consolidated
    with nginx_serving(store.parent, tmp_path / "log.jsonl") as url:
        fetch_anndata(
            f"{url}/store.zarr", "lung", tmp_path / "copy.zarr", chunk_rows=100, settings=FAST
        )
    np.testing.assert_array_equal(local_x(tmp_path / "copy.zarr"), local_x(store))


@pytest.mark.servers
def test_fetch_reads_h5ad_over_http(consolidated, tmp_path):
    store, _ = consolidated
    adata = ad.read_zarr(store)
    adata.write_h5ad(tmp_path / "atlas.h5ad")
    with nginx_serving(tmp_path, tmp_path / "log.jsonl") as url:
        fetch_anndata(
            f"{url}/atlas.h5ad",
            "lung",
            tmp_path / "copy.zarr",
            chunk_rows=100,
            tissue_column="tissue_general",
            settings=FAST,
        )
    np.testing.assert_array_equal(local_x(tmp_path / "copy.zarr"), adata.X.toarray())
