import anndata as ad
import numpy as np
import pytest

from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store
from chunkatlas.errors import ChunkatlasError

from ..support.oracle import assert_matches_reference, in_memory_reference


@pytest.mark.parametrize("engine", ["fused", "scanpy"])
@pytest.mark.parametrize("flavor", ["seurat", "cell_ranger", "seurat_v3"])
def test_dask_analysis_matches_in_memory_scanpy(consolidated, tmp_path, flavor, engine):
    store, _ = consolidated
    params = AnalysisParams(flavor=flavor, n_top_genes=150, n_comps=25, engine=engine)
    analyze_store(
        store,
        tmp_path / "hvg_pca.zarr",
        task_cells=200,
        params=params,
        cluster=ClusterSettings(workers=2),
    )
    result = ad.read_zarr(tmp_path / "hvg_pca.zarr")
    assert result.X is None
    assert result.var["highly_variable"].sum() == 150
    assert result.obsm["X_pca"].shape == (result.n_obs, 25)
    assert result.varm["PCs"].shape == (result.n_vars, 25)
    assert result.uns["hvg"]["flavor"] == flavor
    assert len(result.uns["pca"]["variance_ratio"]) == 25
    assert result.uns["chunkatlas"]["task_cells"] == 200
    assert result.uns["chunkatlas"]["engine"] == engine
    # genes outside the HVG set take no part in the PCA
    assert np.all(result.varm["PCs"][~result.var["highly_variable"].to_numpy()] == 0)
    assert_matches_reference(result, in_memory_reference(store, flavor, 150, 25))


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        (AnalysisParams(flavor="seurat_v9"), "flavor 'seurat_v9' is not one of"),
        (AnalysisParams(n_top_genes=10_000), "n_top_genes 10000 must be between 1 and n_vars"),
        (AnalysisParams(n_top_genes=100, n_comps=100), "n_comps 100 must be below"),
    ],
)
def test_bad_parameters_fail_before_work(consolidated, tmp_path, params, needle):
    store, _ = consolidated
    with pytest.raises(ChunkatlasError, match=needle):
        analyze_store(store, tmp_path / "out.zarr", task_cells=100, params=params)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("cells", "needle"),
    [
        ({"task_cells": 0}, r"task_cells \(cells per task\) must be a positive integer, got 0"),
        ({}, r"task_cells \(cells per task\) must be given"),
    ],
)
def test_bad_cells_per_task_fail_before_work(consolidated, tmp_path, cells, needle):
    store, _ = consolidated
    with pytest.raises(ChunkatlasError, match=needle):
        analyze_store(store, tmp_path / "out.zarr", params=AnalysisParams(), **cells)
    assert list(tmp_path.iterdir()) == []


def test_unanswering_scheduler_fails_fast(consolidated, tmp_path):
    store, _ = consolidated
    with pytest.raises(ChunkatlasError, match="did not answer within 2 s"):
        analyze_store(
            store,
            tmp_path / "out.zarr",
            task_cells=100,
            params=AnalysisParams(n_top_genes=100, n_comps=10),
            cluster=ClusterSettings(scheduler_address="tcp://127.0.0.1:9", connect_timeout=2),
        )
    assert list(tmp_path.iterdir()) == []


def test_cell_ranger_on_mostly_unexpressed_genes_explains_itself(tmp_path):
    import scipy.sparse as sp

    rng = np.random.default_rng(2)
    counts = rng.negative_binomial(1, 0.6, size=(200, 100)).astype(np.float32)
    counts[:, :40] = 0  # 40% of genes never seen: scanpy's decile bins collapse
    ad.AnnData(sp.csr_matrix(counts)).write_zarr(tmp_path / "in.zarr")
    for engine in ("fused", "scanpy"):
        with pytest.raises(ChunkatlasError, match="flavor 'cell_ranger' failed: too many genes"):
            analyze_store(
                tmp_path / "in.zarr",
                tmp_path / "out.zarr",
                task_cells=50,
                params=AnalysisParams(
                    flavor="cell_ranger", n_top_genes=30, n_comps=5, engine=engine
                ),
            )
        assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize("engine", ["fused", "scanpy"])
def test_dense_x_matches_in_memory_scanpy(tmp_path, engine):
    # scanpy's Dask PCA of dense X takes the covariance route here, not dask-ml's
    rng = np.random.default_rng(5)
    counts = rng.negative_binomial(2, 0.4, size=(300, 80)).astype(np.float32)
    ad.AnnData(counts).write_zarr(tmp_path / "dense.zarr")
    params = AnalysisParams(n_top_genes=40, n_comps=8, engine=engine)
    analyze_store(tmp_path / "dense.zarr", tmp_path / "out.zarr", task_cells=70, params=params)
    reference = in_memory_reference(tmp_path / "dense.zarr", "seurat", 40, 8)
    assert_matches_reference(ad.read_zarr(tmp_path / "out.zarr"), reference, n_pcs=5)
