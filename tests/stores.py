"""Helpers for tests that reach into stores on disk."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
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
