"""open_result: an analysis result with X from its store, as scanpy users plot it."""

import shutil

import anndata as ad
import matplotlib
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp
import zarr

from chunkatlas import ChunkatlasError, open_result
from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store
from chunkatlas.store import cells_per_task_of

matplotlib.use("Agg")

HVG_COLUMNS = ["highly_variable", "means", "dispersions", "dispersions_norm"]


def analyse(store, result) -> None:
    params = AnalysisParams(n_top_genes=100, n_comps=10)
    analyze_store(store, result, task_cells=200, params=params, cluster=ClusterSettings(workers=1))


@pytest.fixture(scope="module")
def analysed(consolidated, tmp_path_factory):
    """The workflow's layout: chunks-200/store.zarr and the chunks-200/hvg_pca.zarr made of it."""
    where = tmp_path_factory.mktemp("results") / "chunks-200"
    shutil.copytree(consolidated[0], where / "store.zarr")
    analyse(where / "store.zarr", where / "hvg_pca.zarr")
    return where / "store.zarr", where / "hvg_pca.zarr"


def test_result_opens_with_x_of_its_store(analysed):
    store, result = analysed
    adata = open_result(result)  # the store is found beside the result
    stored, computed = ad.read_zarr(store), ad.read_zarr(result)
    assert hasattr(adata.X, "dask")  # read lazily
    assert (adata.X.compute() != stored.X).nnz == 0
    np.testing.assert_array_equal(adata.obsm["X_pca"], computed.obsm["X_pca"])
    np.testing.assert_array_equal(adata.varm["PCs"], computed.varm["PCs"])
    assert adata.obs.equals(stored.obs)
    assert list(adata.var.columns) == list(stored.var.columns) + HVG_COLUMNS
    assert adata.var[HVG_COLUMNS].equals(computed.var[HVG_COLUMNS])
    assert adata.var["highly_variable"].sum() == 100
    assert {"hvg", "pca", "chunkatlas"} <= set(adata.uns)
    assert adata.uns["chunkatlas"]["n_comps"] == 10


def test_lazy_x_is_cut_as_the_store_is(analysed):
    store, result = analysed
    adata = open_result(result)
    rows, _ = cells_per_task_of(zarr.open_group(store, mode="r")["X"])
    assert adata.X.chunks[0][:-1] == (rows,) * (len(adata.X.chunks[0]) - 1)
    assert len(adata.X.chunks[0]) > 1 and adata.X.chunks[1] == (adata.n_vars,)
    assert open_result(result, task_cells=150).X.chunks[0][0] == 150  # or as asked


# scanpy sorts the Dask column of the gene with numpy, which Dask warns it does not implement.
@pytest.mark.filterwarnings("ignore:The `numpy.argsort` function is not implemented")
def test_pca_coloured_by_a_gene_symbol(analysed):
    store, result = analysed
    adata = open_result(result, var_names="feature_name")
    stored = ad.read_zarr(store)
    gene = int(np.flatnonzero(adata.var["highly_variable"].to_numpy())[0])
    symbol = adata.var_names[gene]
    assert symbol == stored.var["feature_name"].iloc[gene]
    assert adata.var["feature_id"].iloc[gene] == stored.var_names[gene]
    expected = np.sort(stored.X[:, gene].toarray().ravel())
    # scanpy colours by a gene of the lazy X (computing that column) ...
    ax = sc.pl.pca(adata, color=symbol, show=False)
    np.testing.assert_array_equal(np.sort(np.asarray(ax.collections[0].get_array())), expected)
    # ... and a few genes in memory serve every scanpy function, sc.get.obs_df too
    genes = adata[:, [symbol]].to_memory()
    assert sp.issparse(genes.X)
    np.testing.assert_array_equal(np.sort(sc.get.obs_df(genes, [symbol])[symbol]), expected)
    ax = sc.pl.pca(genes, color=symbol, show=False)
    np.testing.assert_array_equal(np.sort(np.asarray(ax.collections[0].get_array())), expected)


def test_gene_symbols_are_made_unique(tmp_path):
    counts = np.random.default_rng(6).poisson(2, (120, 20)).astype(np.float32)
    stored = ad.AnnData(sp.csr_matrix(counts))
    stored.var["symbol"] = ["A", "A"] + [f"G{i}" for i in range(18)]
    stored.write_zarr(tmp_path / "store.zarr")
    params = AnalysisParams(n_top_genes=10, n_comps=3)
    analyze_store(tmp_path / "store.zarr", tmp_path / "hvg_pca.zarr", task_cells=40, params=params)
    adata = open_result(tmp_path / "hvg_pca.zarr", var_names="symbol")
    assert list(adata.var_names[:3]) == ["A", "A-1", "G0"]


def test_bad_result_or_store_is_one_line(analysed, fetched, tmp_path):
    store, result = analysed
    with pytest.raises(ChunkatlasError, match="^result not found: .*nope.zarr$"):
        open_result(tmp_path / "nope.zarr")
    with pytest.raises(ChunkatlasError, match=r"not an analysis result \(no obsm\['X_pca'\]\)"):
        open_result(store)
    shutil.copytree(result, tmp_path / "hvg_pca.zarr")  # the store is not beside this copy
    with pytest.raises(ChunkatlasError, match="no store beside the result: .*store.zarr not found"):
        open_result(tmp_path / "hvg_pca.zarr")
    assert open_result(tmp_path / "hvg_pca.zarr", store=store).n_obs == ad.read_zarr(store).n_obs
    with pytest.raises(ChunkatlasError, match="var has no column 'symbol' for var_names; has: "):
        open_result(result, var_names="symbol")
    cells = ad.read_zarr(fetched)
    cells[:50].copy().write_zarr(tmp_path / "fewer.zarr")
    with pytest.raises(
        ChunkatlasError,
        match=f"is not the one analysed into .*: obs names differ in number "
        f"\\(50 in the store, {cells.n_obs} in the result\\)",
    ):
        open_result(result, store=tmp_path / "fewer.zarr")
    first = cells.obs_names[0]
    cells.obs_names = [f"c{i}" for i in range(cells.n_obs)]
    cells.write_zarr(tmp_path / "renamed.zarr")
    with pytest.raises(
        ChunkatlasError, match=f"obs names differ \\(first: 'c0' in the store, '{first}' in the"
    ):
        open_result(result, store=tmp_path / "renamed.zarr")


def test_census_schema_2_4_shapes_pass_through(analysed, tmp_path):
    """Schema 2.4.0 (Census 2025-11-08): a feature_name held by two genes, and a disease of
    several values joined by " || ", both in the demo atlas, fetched, analysed and plotted."""
    from chunkatlas.report import plot_pca

    store, result = analysed
    stored = ad.read_zarr(store)
    names = stored.var["feature_name"]
    assert names.duplicated().any() and stored.var_names.is_unique  # ids stay the index
    assert stored.obs["disease"].astype(str).str.contains(" \\|\\| ").any()
    adata = open_result(result, var_names="feature_name")
    assert adata.var_names.is_unique
    twice = names[names.duplicated()].iloc[0]
    assert {twice, f"{twice}-1"} <= set(adata.var_names)
    plot_pca(ad.read_zarr(result), tmp_path / "disease.png", label_key="disease")
    assert (tmp_path / "disease.png").read_bytes()[:4] == b"\x89PNG"


def test_what_the_readme_says_to_use_on_the_lazy_x(analysed):
    """adata.X.sum() fails on Dask arrays of scipy blocks; the README's way sums them, and
    anndata's own lazy reader works (xarray is a dependency)."""
    from fast_array_utils import stats

    store, result = analysed
    adata, stored = open_result(result), ad.read_zarr(store)
    np.testing.assert_allclose(
        stats.sum(adata.X, axis=0).compute(), np.asarray(stored.X.sum(axis=0)).ravel(), rtol=1e-6
    )
    lazy = ad.experimental.read_lazy(store)
    assert lazy.shape == stored.shape and list(lazy.obs_names[:3]) == list(stored.obs_names[:3])
