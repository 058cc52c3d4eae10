import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tiledbsoma

from chunkatlas.errors import ChunkatlasError
from chunkatlas.ingest import DEFAULT_OBS_FILTER, build_obs_filter, fetch_tissue
from chunkatlas.ingest._fetch import fetch_anndata

from ..support.stores import assert_totals_of_x


def test_obs_filter_builder():
    assert build_obs_filter(DEFAULT_OBS_FILTER, "bone marrow") == (
        'tissue_general == "bone marrow" and is_primary_data == True'
    )
    assert build_obs_filter('tissue == "{tissue}"', "lung") == 'tissue == "lung"'


@pytest.mark.parametrize(
    ("template", "tissue", "needle"),
    [
        ("tissue_general == 'lung'", "lung", "exactly the field {tissue}"),
        ('tissue == "{tissue}" and x == "{other}"', "lung", "exactly the field {tissue}"),
        (DEFAULT_OBS_FILTER, 'lung" or "1', "may not contain quotes"),
    ],
)
def test_obs_filter_builder_refuses(template, tissue, needle):
    with pytest.raises(ChunkatlasError, match=needle):
        build_obs_filter(template, tissue)


def test_fetch_takes_primary_cells_of_one_tissue(atlas, fetched):
    with tiledbsoma.Experiment.open(atlas) as exp:
        obs = exp.obs.read().concat().to_pandas()
        n_vars = exp.ms["RNA"].var.count
    expected = obs[(obs.tissue_general == "lung") & obs.is_primary_data]
    adata = ad.read_zarr(fetched)
    assert adata.n_obs == len(expected)
    assert adata.n_vars == n_vars
    assert set(adata.obs["tissue_general"]) == {"lung"}
    assert adata.obs["is_primary_data"].all()
    assert list(adata.obs["soma_joinid"]) == sorted(expected["soma_joinid"])
    assert adata.var_names[0].startswith("ENSG")
    assert adata.X.nnz > 0


# The reference is tiledbsoma's own to_anndata, whose integer index anndata converts.
@pytest.mark.filterwarnings("ignore:Transforming to str index")
def test_fetch_matches_the_in_memory_query(atlas, fetched):
    with tiledbsoma.Experiment.open(atlas) as exp:
        query = exp.axis_query(
            "RNA",
            obs_query=tiledbsoma.AxisQuery(
                value_filter=build_obs_filter(DEFAULT_OBS_FILTER, "lung")
            ),
        )
        memory = query.to_anndata("raw")
    streamed = ad.read_zarr(fetched)
    assert (memory.X != streamed.X).nnz == 0


def test_fetch_unknown_tissue_names_tissue_and_filter(atlas, tmp_path):
    with pytest.raises(ChunkatlasError, match=r"tissue 'liver' matches no cells .*liver"):
        fetch_tissue(atlas, "liver", tmp_path / "out.zarr")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"layer": "normalized"}, "X layer 'normalized' not in"),
        ({"measurement": "ATAC"}, "measurement 'ATAC' not in"),
        ({"var_index": "gene_symbol"}, "var has no column 'gene_symbol'"),
    ],
)
def test_fetch_refuses_bad_names(atlas, tmp_path, kwargs, needle):
    with pytest.raises(ChunkatlasError, match=needle):
        fetch_tissue(atlas, "lung", tmp_path / "out.zarr", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_fetch_missing_source(tmp_path):
    with pytest.raises(ChunkatlasError, match="SOMA experiment not found"):
        fetch_tissue(str(tmp_path / "nope.soma"), "lung", tmp_path / "out.zarr")


def test_fetched_store_records_each_cells_raw_sum_and_nnz(atlas, fetched):
    adata = ad.read_zarr(fetched)
    assert_totals_of_x(adata)
    # the demo atlas records them too, as the Census does: the fetched values are the source's
    with tiledbsoma.Experiment.open(atlas) as exp:
        source = exp.obs.read(column_names=["soma_joinid", "raw_sum", "nnz"]).concat().to_pandas()
    source = source.set_index("soma_joinid").loc[adata.obs["soma_joinid"]]
    np.testing.assert_array_equal(adata.obs["raw_sum"], source["raw_sum"])
    np.testing.assert_array_equal(adata.obs["nnz"], source["nnz"])


def test_dense_fetch_records_the_same_totals(fetched, tmp_path):
    fetch_anndata(str(fetched), "lung", tmp_path / "dense.zarr", dense=True, chunk_rows=128)
    dense, sparse = ad.read_zarr(tmp_path / "dense.zarr"), ad.read_zarr(fetched)
    assert isinstance(dense.X, np.ndarray)
    assert_totals_of_x(dense)
    pd.testing.assert_frame_equal(dense.obs, sparse.obs)


def counts_anndata(n_obs: int = 300, n_vars: int = 40) -> ad.AnnData:
    rng = np.random.default_rng(1)
    counts = sp.random(n_obs, n_vars, density=0.2, format="csr", dtype=np.float32, rng=rng)
    counts.data = np.ceil(counts.data * 20)
    adata = ad.AnnData(X=counts, layers={"twice": counts * 2})
    adata.obs_names = [f"cell-{i}" for i in range(n_obs)]
    adata.obs["tissue"] = rng.choice(["lung", "blood"], n_obs)
    return adata


def test_h5ad_fetch_records_totals_of_x_not_layers(tmp_path):
    source = counts_anndata()
    source.write_h5ad(tmp_path / "source.h5ad")
    fetch_anndata(
        str(tmp_path / "source.h5ad"),
        "lung",
        tmp_path / "lung.zarr",
        tissue_column="tissue",
        chunk_rows=50,
    )
    adata = ad.read_zarr(tmp_path / "lung.zarr")
    assert adata.n_obs == (source.obs["tissue"] == "lung").sum()
    assert_totals_of_x(adata)


def test_fetch_of_an_in_memory_scanpy_dataset_records_totals(tmp_path):
    fetch_anndata("scanpy:pbmc68k_reduced", "blood", tmp_path / "pbmc.zarr")
    adata = ad.read_zarr(tmp_path / "pbmc.zarr")
    # scaled values, not counts: equal up to the order of the additions
    np.testing.assert_allclose(adata.obs["raw_sum"], adata.X.sum(axis=1, dtype=np.float64))
    np.testing.assert_array_equal(adata.obs["nnz"], np.count_nonzero(adata.X, axis=1))


@pytest.mark.parametrize("column", ["raw_sum", "nnz"])
def test_source_whose_obs_totals_disagree_with_x_is_refused(tmp_path, column):
    source = counts_anndata()
    x = source.X
    source.obs["raw_sum"] = np.asarray(x.sum(axis=1, dtype=np.float64)).ravel()
    source.obs["nnz"] = np.diff(x.indptr)
    source.obs.loc["cell-137", column] += 1
    source.write_h5ad(tmp_path / "source.h5ad")
    with pytest.raises(ChunkatlasError, match=f"obs {column} of cell 'cell-137' is ") as err:
        fetch_anndata(str(tmp_path / "source.h5ad"), "all", tmp_path / "out.zarr", chunk_rows=64)
    assert "\n" not in str(err.value)
    assert "1 of 300 cells differ" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.h5ad"]
