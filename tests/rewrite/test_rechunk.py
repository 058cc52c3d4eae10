import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import zarr
from anndata.io import write_elem

from chunkatlas.errors import ChunkatlasError
from chunkatlas.ingest._cell_totals import CellTotals
from chunkatlas.rewrite import rechunk_store
from chunkatlas.rewrite._rechunk import chunk_callback, matrix_chunks, plan_chunks

from ..support.stores import assert_totals_of_x


def test_matrix_chunks_sparse_holds_about_size_cells():
    # 1,000 cells with 50,000 stored values: 50 per cell, so 100 cells ~ 5,000 values
    assert matrix_chunks((1000, 300), 100, nnz=50_000) == (5000,)
    assert matrix_chunks((1000, 300), 3, nnz=1000) == (3,)
    assert matrix_chunks((10, 300), 100, nnz=0) == (1,)


def test_matrix_chunks_dense_by_cells_or_genes():
    assert matrix_chunks((1000, 300), 100) == (100, 300)
    assert matrix_chunks((1000, 300), 5000) == (1000, 300)
    assert matrix_chunks((1000, 300), 5, orientation="genes") == (1000, 5)


@pytest.mark.parametrize(("size", "axis"), [(0, "cells"), (-3, "cells"), (10, "diagonal")])
def test_matrix_chunks_refuses_bad_values(size, axis):
    with pytest.raises(ChunkatlasError, match=str(size) if size < 1 else "diagonal"):
        matrix_chunks((10, 10), size, orientation=axis)


def small_anndata() -> ad.AnnData:
    rng = np.random.default_rng(0)
    counts = sp.random(500, 60, density=0.1, format="csr", dtype=np.float32, rng=rng)
    counts.data = np.ceil(counts.data * 10)
    adata = ad.AnnData(
        X=counts,
        layers={"dense": counts.toarray(), "counts": counts.copy()},
        obsm={"X_emb": rng.normal(size=(500, 3))},
    )
    adata.obs["cell_type"] = rng.choice(["a", "b"], 500)
    return adata


def write_plain(adata: ad.AnnData, path) -> None:
    write_elem(zarr.open_group(path, mode="w", zarr_format=2), "/", adata)


def test_callback_sets_chunks_of_x_and_layers_only(tmp_path):
    adata = small_anndata()
    write_plain(adata, tmp_path / "plain.zarr")
    planned = plan_chunks(zarr.open_group(tmp_path / "plain.zarr", mode="r"), 64)
    assert planned["/layers/dense"] == (64, 60)
    assert set(planned) == {"/X", "/layers/dense", "/layers/counts"}

    from anndata.experimental import write_dispatched

    out = zarr.open_group(tmp_path / "tuned.zarr", mode="w", zarr_format=2)
    write_dispatched(out, "/", adata, callback=chunk_callback(planned))
    per_cell = adata.X.nnz / adata.n_obs
    assert out["X/data"].chunks == (int(np.ceil(per_cell * 64)),)
    assert out["layers/counts/indices"].chunks == out["X/data"].chunks
    assert out["layers/dense"].chunks == (64, 60)
    # elements outside X and layers keep anndata's own chunking
    plain = zarr.open_group(tmp_path / "plain.zarr", mode="r")
    assert out["obsm/X_emb"].chunks == plain["obsm/X_emb"].chunks


@pytest.mark.parametrize("axis", ["cells", "genes"])
def test_rechunk_store_round_trips_and_follows_size(tmp_path, axis):
    adata = small_anndata()
    write_plain(adata, tmp_path / "plain.zarr")
    rechunk_store(tmp_path / "plain.zarr", tmp_path / "out.zarr", 7, orientation=axis)
    back = ad.read_zarr(tmp_path / "out.zarr")
    np.testing.assert_array_equal(back.X.toarray(), adata.X.toarray())
    np.testing.assert_array_equal(back.layers["dense"], adata.layers["dense"])
    assert (back.obs["cell_type"] == adata.obs["cell_type"]).all()
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    expected = (7, 60) if axis == "cells" else (500, 7)
    assert group["layers/dense"].chunks == expected
    assert not any(p.name.startswith(".out.zarr") for p in tmp_path.iterdir())


def test_rechunk_refuses_bad_size_and_leaves_nothing(tmp_path):
    write_plain(small_anndata(), tmp_path / "plain.zarr")
    with pytest.raises(ChunkatlasError, match="positive integer, got 0"):
        rechunk_store(tmp_path / "plain.zarr", tmp_path / "out.zarr", 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.zarr"]


def test_rechunk_refuses_a_non_anndata_store(tmp_path):
    zarr.open_group(tmp_path / "other.zarr", mode="w").create_array("a", shape=(3,), dtype="i4")
    with pytest.raises(ChunkatlasError, match="not an AnnData store"):
        rechunk_store(tmp_path / "other.zarr", tmp_path / "out.zarr", 10)
    assert not (tmp_path / "out.zarr").exists()


def test_fetched_store_rechunked_by_cells(fetched, consolidated):
    store, _ = consolidated
    source = zarr.open_group(fetched, mode="r")
    group = zarr.open_group(store, mode="r")
    n_obs = source["X"].attrs["shape"][0]
    nnz = source["X/data"].shape[0]
    assert group["X/data"].chunks == (int(np.ceil(nnz / n_obs * 200)),)
    np.testing.assert_array_equal(group["X/data"][:], source["X/data"][:])


def test_rechunked_store_records_each_cells_raw_sum_and_nnz(fetched, consolidated):
    store, _ = consolidated
    rechunked = ad.read_zarr(store)
    assert_totals_of_x(rechunked)
    pd.testing.assert_frame_equal(rechunked.obs, ad.read_zarr(fetched).obs)
    group = zarr.open_group(store, mode="r")
    assert group["obs/raw_sum"].chunks == group["obs/soma_joinid"].chunks


@pytest.mark.parametrize("axis", ["cells", "genes"])
def test_dense_rechunk_records_totals_of_x_not_layers(tmp_path, axis):
    adata = small_anndata()
    adata.X = adata.layers.pop("dense")  # the sparse layer "counts" holds the same values
    adata.layers["twice"] = adata.X * 2
    write_plain(adata, tmp_path / "plain.zarr")
    rechunk_store(tmp_path / "plain.zarr", tmp_path / "out.zarr", 7, orientation=axis)
    back = ad.read_zarr(tmp_path / "out.zarr")
    assert isinstance(back.X, np.ndarray)
    assert zarr.open_group(tmp_path / "out.zarr", mode="r")["X"].chunks == (
        (7, 60) if axis == "cells" else (500, 7)
    )
    assert_totals_of_x(back)


def test_rechunk_of_a_gene_major_sparse_store_is_refused_with_the_way_out(tmp_path):
    write_plain(small_anndata(), tmp_path / "plain.zarr")
    rechunk_store(tmp_path / "plain.zarr", tmp_path / "genes.zarr", 7, orientation="genes")
    with pytest.raises(ChunkatlasError) as raised:
        rechunk_store(tmp_path / "genes.zarr", tmp_path / "cells.zarr", 50)
    message = str(raised.value)
    assert "gene-major (csc_matrix)" in message and "--orientation cells" in message
    assert "\n" not in message and not (tmp_path / "cells.zarr").exists()


def test_rechunk_of_a_gene_chunked_store_keeps_its_totals(tmp_path):
    adata = small_anndata()
    adata.X = adata.layers.pop("dense")
    del adata.layers["counts"]  # a sparse layer is written gene-major (CSC) too
    write_plain(adata, tmp_path / "plain.zarr")
    rechunk_store(tmp_path / "plain.zarr", tmp_path / "genes.zarr", 7, orientation="genes")
    rechunk_store(tmp_path / "genes.zarr", tmp_path / "cells.zarr", 50, read_rows=64)
    genes, cells = ad.read_zarr(tmp_path / "genes.zarr"), ad.read_zarr(tmp_path / "cells.zarr")
    assert_totals_of_x(cells)
    pd.testing.assert_frame_equal(cells.obs, genes.obs)


@pytest.mark.parametrize("dense", [False, True])
def test_totals_of_blocks_split_along_genes_add_up(dense):
    import dask
    import dask.array as da

    counts = small_anndata().X
    matrix = counts.toarray() if dense else counts
    x = da.from_array(matrix, chunks=(64, 25), asarray=False)  # 8 x 3 blocks
    totals = CellTotals(x)
    with dask.config.set(scheduler="threads"):
        written = totals.x.compute()
    assert (sp.csr_matrix(written) != counts).nnz == 0  # passed through unchanged
    sums, nnz = totals.totals()
    np.testing.assert_array_equal(sums, np.asarray(counts.sum(axis=1, dtype=np.float64)).ravel())
    np.testing.assert_array_equal(nnz, np.diff(counts.indptr))


def test_totals_refused_before_every_block_is_counted():
    import dask.array as da

    totals = CellTotals(da.from_array(small_anndata().X.toarray(), chunks=(100, 60)))
    totals.x.blocks[0].compute()
    with pytest.raises(ChunkatlasError, match=r"4 blocks of X were written but not counted"):
        totals.totals()


def test_rechunk_refuses_a_source_whose_obs_totals_disagree_with_x(tmp_path):
    adata = small_anndata()
    adata.obs["raw_sum"] = np.asarray(adata.X.sum(axis=1, dtype=np.float64)).ravel()
    adata.obs["nnz"] = np.diff(adata.X.indptr)
    adata.obs.loc["42", "raw_sum"] -= 0.5
    write_plain(adata, tmp_path / "plain.zarr")
    with pytest.raises(
        ChunkatlasError, match=r"obs raw_sum of cell '42' is \S+ but X gives"
    ) as err:
        rechunk_store(tmp_path / "plain.zarr", tmp_path / "out.zarr", 64)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.zarr"]
