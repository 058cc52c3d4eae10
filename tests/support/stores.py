"""Helpers for tests that reach into stores on disk, and small stores written by anndata."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import zarr


def chunk_key(store: Path, array: str, *index: int) -> str:
    """The key of a chunk within its array's folder: '1' or '0.3' in zarr v2, 'c/1' in v3."""
    return zarr.open_array(store / array, mode="r").metadata.encode_chunk_key(index)


def assert_totals_of_x(adata: ad.AnnData) -> None:
    """obs raw_sum and nnz are X's row sums and stored values per row (non-zeros if dense)."""
    assert adata.obs["raw_sum"].dtype == np.float64
    assert adata.obs["nnz"].dtype == np.int64
    if sp.issparse(adata.X):
        x = sp.csr_matrix(adata.X)
        sums, nnz = np.asarray(x.sum(axis=1, dtype=np.float64)).ravel(), np.diff(x.indptr)
    else:
        sums, nnz = adata.X.sum(axis=1, dtype=np.float64), np.count_nonzero(adata.X, axis=1)
    np.testing.assert_array_equal(adata.obs["raw_sum"], sums)  # integer counts: exact
    np.testing.assert_array_equal(adata.obs["nnz"], nnz)


def small_anndata(n_obs: int = 60, n_vars: int = 12, seed: int = 0) -> ad.AnnData:
    """Integer counts as a CSR X and, dense, as ``layers["dense"]``; obs has a tissue column, var a
    feature name."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.6, (n_obs, n_vars)).astype(np.float32)
    obs = pd.DataFrame(
        {"tissue": pd.Categorical(rng.choice(["lung", "liver"], n_obs))},
        index=[f"cell-{i}" for i in range(n_obs)],
    )
    var = pd.DataFrame(
        {"feature_name": [f"G{j}" for j in range(n_vars)]},
        index=[f"gene-{j}" for j in range(n_vars)],
    )
    return ad.AnnData(sp.csr_matrix(counts), obs=obs, var=var, layers={"dense": counts})


def write_small_store(
    path: Path,
    adata: ad.AnnData,
    zarr_format: int = 3,
    *,
    x_chunk: int = 50,
    layer_rows: int = 25,
    consolidated: bool = True,
) -> Path:
    """``adata`` written by anndata as a zarr store whose matrices have several chunks each: a
    sparse X's arrays ``x_chunk`` values per chunk, a dense X and each dense layer ``layer_rows``
    rows per chunk."""
    from anndata.io import write_elem

    def chunks(matrix) -> tuple[int, ...]:
        return (x_chunk,) if sp.issparse(matrix) else (layer_rows, adata.n_vars)

    group = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    with ad.settings.override(auto_shard_zarr_v3=False):
        write_elem(group, "/", ad.AnnData(obs=adata.obs, var=adata.var))
        write_elem(group, "X", adata.X, dataset_kwargs={"chunks": chunks(adata.X)})
        for name in adata.layers.keys():
            if name is None:  # anndata 0.13 lists X among the layers, under None
                continue
            layer = adata.layers[name]
            write_elem(group["layers"], name, layer, dataset_kwargs={"chunks": chunks(layer)})
    if consolidated:
        with warnings.catch_warnings():  # zarr: "not part in the Zarr format 3 specification"
            warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
            zarr.consolidate_metadata(path)
    return path
