"""X that is already normalised and log1p'd (``analysis.normalized``): analysed as it is, equal to
in-memory scanpy on the same values; without the setting it is refused in one line that names
the ways out, and seurat_v3 (which selects on counts) is refused with it."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp

from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store
from chunkatlas.analysis.fused import _kernels as kernels
from chunkatlas.errors import ChunkatlasError
from chunkatlas.rewrite import rechunk_store

from ..support.oracle import assert_matches_reference


@pytest.fixture(scope="module")
def normalised_store(fetched, tmp_path_factory):
    """The demo lung's counts normalised and log1p'd in memory by scanpy, then written as the
    workflow writes a store (rechunked, 200 cells per chunk, packed codec)."""
    where = tmp_path_factory.mktemp("normalised")
    adata = ad.read_zarr(fetched)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    del adata.uns["log1p"]  # what a store of log-normalised values holds: the values
    adata.obs = adata.obs.drop(columns=["raw_sum", "nnz"])  # the counts' totals
    adata.write_zarr(where / "written.zarr")
    rechunk_store(where / "written.zarr", where / "store.zarr", 200)
    return where / "store.zarr"


def reference(store, flavor: str, n_top_genes: int, n_comps: int, batch_key=None):
    """In-memory scanpy on the stored values, without normalize_total and log1p."""
    adata = ad.read_zarr(store)
    sc.pp.highly_variable_genes(adata, flavor=flavor, n_top_genes=n_top_genes, batch_key=batch_key)
    sc.pp.pca(adata, n_comps=n_comps, mask_var="highly_variable")
    return adata


@pytest.mark.parametrize(
    ("engine", "flavor", "batch_key"),
    [
        ("fused", "seurat", None),
        ("scanpy", "seurat", None),
        ("fused", "cell_ranger", None),
        ("scanpy", "cell_ranger", None),
        ("fused", "seurat", "dataset_id"),
    ],
)
def test_normalised_x_matches_in_memory_scanpy(
    normalised_store, tmp_path, engine, flavor, batch_key
):
    params = AnalysisParams(
        flavor=flavor,
        n_top_genes=120,
        n_comps=20,
        engine=engine,
        batch_key=batch_key,
        normalized=True,
    )
    analyze_store(
        normalised_store,
        tmp_path / "hvg_pca.zarr",
        task_cells=200,
        params=params,
        cluster=ClusterSettings(workers=2),
    )
    result = ad.read_zarr(tmp_path / "hvg_pca.zarr")
    expected = reference(normalised_store, flavor, 120, 20, batch_key)
    assert_matches_reference(result, expected)  # identical HVGs, PCs |r| >= 0.999
    assert result.uns["chunkatlas"]["normalized"] is True
    steps = set(result.uns["chunkatlas"]["seconds"])
    assert not steps & {"normalize_total", "log1p", "library_sizes"}


@pytest.mark.parametrize("engine", ["fused", "scanpy"])
def test_normalised_x_without_the_setting_is_refused_naming_the_ways_out(
    normalised_store, tmp_path, engine
):
    params = AnalysisParams(n_top_genes=120, n_comps=20, engine=engine)
    with pytest.raises(ChunkatlasError) as raised:
        analyze_store(normalised_store, tmp_path / "out.zarr", task_cells=200, params=params)
    message = str(raised.value)
    assert "\n" not in message
    assert f"{normalised_store}: X has " in message and "non-integer values" in message
    for way_out in ("source.layer", "source.use_raw", "analysis.normalized: true"):
        assert way_out in message
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize("flavor", ["seurat_v3", "seurat_v3_paper"])
def test_seurat_v3_on_normalised_data_is_refused_before_any_work(
    normalised_store, tmp_path, flavor
):
    params = AnalysisParams(flavor=flavor, n_top_genes=120, n_comps=20, normalized=True)
    with pytest.raises(ChunkatlasError) as raised:
        analyze_store(normalised_store, tmp_path / "out.zarr", task_cells=200, params=params)
    message = str(raised.value)
    assert "\n" not in message
    assert f"flavor {flavor} selects genes on raw counts" in message
    assert "source.layer" in message and "source.use_raw" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["identity", "expm1"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_taken_as_stored_are_scanpys_bit_for_bit(kind, dtype):
    """Normalised values through the fused engine's kernels: as they are, or their expm1 (the
    seurat statistics), value for value as numpy computes them on X."""
    rng = np.random.default_rng(4)
    x = sp.random(50, 30, density=0.3, format="csr", rng=rng, dtype=dtype)
    x.data = np.log1p(x.data * 40)  # non-integers, and integers in the table's range
    x.data[::5] = np.round(x.data[::5])
    ones = np.ones(50, dtype=dtype)
    expected = x.data if kind == "identity" else np.expm1(x.data)
    got = kernels.normalized_values(x.indptr, x.data, ones, kind)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
