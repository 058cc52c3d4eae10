"""X and layers as Dask arrays (chunkatlas.store._lazy): the same values as in memory, in blocks
of the rows asked for, everything else read as anndata reads it; damage named; duplicate
names refused."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import check_unique_names, read_dask_backed

from ..support.stores import chunk_key, small_anndata, write_small_store


def test_x_and_layers_equal_the_in_memory_matrices(small, small_store):
    adata = read_dask_backed(small_store, 7)
    assert isinstance(adata.X, da.Array) and isinstance(adata.layers["dense"], da.Array)
    assert adata.X.chunks == ((7,) * 8 + (4,), (12,))  # blocks of 7 cells, all genes
    x = adata.X.compute()
    assert sp.isspmatrix_csr(x) and x.dtype == np.float32
    np.testing.assert_array_equal(x.toarray(), small.X.toarray())
    np.testing.assert_array_equal(adata.layers["dense"].compute(), small.layers["dense"])
    pd.testing.assert_frame_equal(adata.obs, small.obs)
    pd.testing.assert_frame_equal(adata.var, small.var)


def test_dense_matrices_can_follow_their_chunks_on_disk(small, small_store):
    adata = read_dask_backed(small_store, 7, dense_chunks="disk")
    assert adata.layers["dense"].chunks == ((25, 25, 10), (12,))
    assert adata.X.chunks[0][0] == 7  # a sparse X keeps its blocks of rows
    np.testing.assert_array_equal(adata.layers["dense"].compute(), small.layers["dense"])


def test_an_open_group_reads_the_same(small, small_store):
    adata = read_dask_backed(zarr.open_group(small_store, mode="r"), 25)
    assert adata.X.chunks[0] == (25, 25, 10)
    np.testing.assert_array_equal(adata.X.compute().toarray(), small.X.toarray())


def test_a_gene_major_matrix_is_refused_in_one_line_with_the_way_out(tmp_path):
    adata = small_anndata(n_obs=30, n_vars=8)
    adata.layers["csc"] = sp.csc_matrix(adata.layers["dense"])
    store = write_small_store(tmp_path / "csc.zarr", adata, x_chunk=40)
    with pytest.raises(ChunkatlasError) as raised:
        read_dask_backed(store, 10)
    message = str(raised.value)
    assert message.startswith("layers/csc of ") and "gene-major (csc_matrix)" in message
    assert "--orientation cells" in message and "\n" not in message


def test_a_chunk_of_x_that_cannot_be_decoded_fails_the_computation_naming_it(store_copy):
    key = f"X/indices/{chunk_key(store_copy, 'X/indices', 2)}"
    chunk = store_copy / key
    chunk.write_bytes(b"\x00" * chunk.stat().st_size)
    adata = read_dask_backed(store_copy, 20)  # metadata only: opens fine
    with pytest.raises(ChunkatlasError, match=rf"^store .*store\.zarr: chunk '{key}' cannot be"):
        adata.X.compute()


@pytest.mark.filterwarnings("ignore:Variable names are not unique")
def test_a_store_with_duplicate_names_is_refused(tmp_path):
    adata = small_anndata(n_obs=10, n_vars=4)
    adata.var_names = ["g1", "g2", "g2", "g3"]
    store = write_small_store(tmp_path / "dup.zarr", adata, x_chunk=10)
    with pytest.raises(ChunkatlasError) as caught:
        read_dask_backed(store, 5)
    assert str(caught.value) == (
        f"store {store} has duplicate var names (first: 'g2'); var names must be unique"
    )


def test_unique_names_pass_and_the_first_duplicate_is_named():
    obs = pd.DataFrame(index=["a", "b", "c"])
    check_unique_names(obs, pd.DataFrame(index=["x", "y"]), where="s.zarr")
    with pytest.raises(
        ChunkatlasError, match=r"^store s.zarr has duplicate obs names \(first: 'b'"
    ):
        check_unique_names(pd.DataFrame(index=["a", "b", "b", "c", "c"]), obs, where="s.zarr")
