"""Batch-aware HVG selection: the batches read from obs, both engines against in-memory scanpy,
the memory bound, and every bad batch column refused in one line before any work."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store
from chunkatlas.analysis import _batches as batches_module
from chunkatlas.analysis.fused import _passes as passes
from chunkatlas.errors import ChunkatlasError
from chunkatlas.ingest.demo import dataset_effect

from ..conftest import TINY
from ..support.oracle import assert_matches_reference, in_memory_reference


def small_store(path, batch, n_genes=120, seed=0):
    """Counts of len(batch) cells with obs column ``batch`` (any values, missing ones too)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.lognormal(-0.5, 1.0, n_genes), (len(batch), n_genes))
    counts[:, 0] += 1  # no empty cell
    adata = ad.AnnData(sp.csr_matrix(counts.astype(np.float32)))
    adata.obs_names = [f"c{i}" for i in range(adata.n_obs)]
    adata.var_names = [f"g{i}" for i in range(n_genes)]
    adata.obs["batch"] = batch
    adata.write_zarr(path)
    return path


# ----------------------------------------------------------------------------- the batches


def test_batches_follow_scanpys_order_and_leave_unused_categories_out():
    values = pd.Series(
        pd.Categorical(["x", "y", "x", "y", "x"], categories=["y", "unused", "x"]),
        index=[f"c{i}" for i in range(5)],
    )
    by_category = batches_module.batches_of(values, "batch", "seurat", "store")
    assert by_category.names == ("y", "x")  # the categories' order, as scanpy's seurat
    np.testing.assert_array_equal(by_category.codes, [1, 0, 1, 0, 1])
    sorted_ = batches_module.batches_of(values, "batch", "seurat_v3", "store")
    assert sorted_.names == ("x", "y")  # sorted, as np.unique in scanpy's seurat_v3
    np.testing.assert_array_equal(sorted_.sizes, [3, 2])
    present, local = sorted_.of_rows(1, 3)
    np.testing.assert_array_equal(present, [0, 1])
    np.testing.assert_array_equal(local, [1, 0])


def test_strings_and_numbers_become_sorted_batches():
    strings = batches_module.batches_of(pd.Series(["b", "a", "b", "a"]), "k", "seurat", "s")
    assert strings.names == ("a", "b")
    numbers = batches_module.batches_of(pd.Series([10, 2, 10, 2]), "k", "seurat", "s")
    assert numbers.names == ("2", "10")


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("engine", ["fused", "scanpy"])
@pytest.mark.parametrize(
    ("batch", "key", "needle"),
    [
        (
            ["a", "b"] * 30,
            "donor",
            "batch_key 'donor' is not an obs column of .*; its obs columns: 'batch'",
        ),
        (
            ["a", None] * 30,
            "batch",
            "batch_key 'batch' of .* has no value for 30 cell\\(s\\) \\(the first: 'c1'\\); "
            "fill them in or leave those cells out",
        ),
        (
            ["a"] * 59 + ["lonely"],
            "batch",
            "batch 'lonely' of batch_key 'batch' has 1 cell; every batch needs at least 2 cells",
        ),
    ],
    ids=["no-such-column", "missing-values", "one-cell-batch"],
)
def test_bad_batch_column_is_one_line_before_any_work(tmp_path, engine, batch, key, needle):
    store = small_store(tmp_path / "store.zarr", batch)
    params = AnalysisParams(n_top_genes=40, n_comps=5, engine=engine, batch_key=key)
    # an address nobody answers: the check must come before the cluster is asked for
    cluster = ClusterSettings(scheduler_address="tcp://127.0.0.1:9", connect_timeout=2)
    with pytest.raises(ChunkatlasError, match=needle) as err:
        analyze_store(store, tmp_path / "out.zarr", task_cells=20, params=params, cluster=cluster)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]


def test_per_batch_moments_beyond_a_workers_share_are_refused(tmp_path, monkeypatch):
    """Cells of many batches interleaved: each task meets every batch.  Past the share of a
    worker's memory a task may spend on per-batch sums, one line says what to do."""
    store = small_store(tmp_path / "store.zarr", [f"b{i % 20}" for i in range(400)])
    monkeypatch.setattr(passes, "BATCH_SHARE", 1e-6)
    params = AnalysisParams(n_top_genes=40, n_comps=5, batch_key="batch")
    with pytest.raises(ChunkatlasError) as err:
        analyze_store(
            store, tmp_path / "out.zarr", task_cells=100, params=params, cluster=ClusterSettings()
        )
    message = str(err.value)
    assert "a task's cells span 20 of the 20 batches" in message
    assert (
        "fewer cells per task (--task-cells), or a store whose cells are grouped by batch"
        in message
    )
    assert not (tmp_path / "out.zarr").exists()


def test_a_batch_too_small_for_the_loess_fit_is_named(consolidated, tmp_path):
    """The demo lung's smallest dataset (124 cells) defeats seurat_v3's loess, as it defeats
    scanpy's own (with scikit-misc's bare "reciprocal condition number")."""
    store, _ = consolidated
    params = AnalysisParams(flavor="seurat_v3", n_top_genes=80, n_comps=5, batch_key="dataset_id")
    with pytest.raises(ChunkatlasError) as err:
        analyze_store(store, tmp_path / "out.zarr", task_cells=200, params=params)
    message = str(err.value)
    assert message.startswith("HVG flavor 'seurat_v3': the loess fit of variance on mean failed")
    assert "in batch '" in message and "use larger batches or flavor 'seurat'" in message
    assert not (tmp_path / "out.zarr").exists()


# ----------------------------------------------------------------------------- both engines


@pytest.mark.parametrize("engine", ["fused", "scanpy"])
def test_both_engines_select_per_dataset_as_in_memory_scanpy(consolidated, tmp_path, engine):
    store, _ = consolidated
    params = AnalysisParams(n_top_genes=100, n_comps=20, engine=engine, batch_key="dataset_id")
    analyze_store(
        store,
        tmp_path / "out.zarr",
        task_cells=200,
        params=params,
        cluster=ClusterSettings(workers=2),
    )
    result = ad.read_zarr(tmp_path / "out.zarr")
    reference = in_memory_reference(store, "seurat", 100, 20, batch_key="dataset_id")
    assert_matches_reference(result, reference)
    for column in ("highly_variable_nbatches", "highly_variable_intersection"):
        np.testing.assert_array_equal(result.var[column], reference.var[column], err_msg=column)
    assert result.uns["chunkatlas"]["batch_key"] == "dataset_id"


def test_the_demo_datasets_batch_effects_sway_a_plain_selection(consolidated):
    """The demo atlas's datasets shift some genes each: a selection over all cells takes more
    of the strongly shifted genes (e-fold or more) than one per dataset, and the two differ
    measurably."""
    store, _ = consolidated
    adata = ad.read_zarr(store)
    genes = adata.var["soma_joinid"].to_numpy()
    shifted = np.zeros(adata.n_vars, dtype=bool)
    for dataset in adata.obs["dataset_id"].unique():
        _, factors = dataset_effect(TINY, str(dataset))
        shifted |= np.abs(np.log(factors[genes])) > 1
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    hvg = {"flavor": "seurat", "n_top_genes": 100, "inplace": False}
    plain = sc.pp.highly_variable_genes(adata, **hvg)["highly_variable"].to_numpy()
    per_batch = sc.pp.highly_variable_genes(adata, batch_key="dataset_id", **hvg)
    per_batch = per_batch["highly_variable"].to_numpy()
    assert (plain & per_batch).sum() <= 85  # a tenth of the genes or more differ
    assert shifted[plain].sum() > shifted[per_batch].sum()
