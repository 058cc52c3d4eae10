"""The fused engine: kernels against numpy/scipy, results against in-memory scanpy (the oracle)."""

from __future__ import annotations

import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store, dask_client, fused
from chunkatlas.analysis.fused import _context as context
from chunkatlas.analysis.fused import _gram as gram
from chunkatlas.analysis.fused import _hvg as hvg
from chunkatlas.analysis.fused import _kernels as kernels
from chunkatlas.analysis.fused import _pca as pca
from chunkatlas.analysis.fused import _plan as plan
from chunkatlas.analysis.fused import _projection as projection
from chunkatlas.analysis.fused import _stash as stash
from chunkatlas.analysis.fused import _tasks as tasks
from chunkatlas.errors import ChunkatlasError

from ..support.oracle import assert_matches_reference, in_memory_reference

# ----------------------------------------------------------------------------- helpers


def random_csr(rng, n_rows, n_cols, density=0.2, dtype=np.float32, high=60):
    """Counts-like CSR: small integers, a few large ones and (for floats) a few non-integers."""
    matrix = sp.random(
        n_rows,
        n_cols,
        density=density,
        format="csr",
        random_state=rng,
        data_rvs=lambda n: rng.integers(1, high, n),
    ).astype(dtype)
    if np.issubdtype(dtype, np.floating) and matrix.nnz:
        matrix.data[::7] += dtype(0.25)
    matrix.sort_indices()
    return matrix


def counts_with_types(rng, n_cells, n_genes, n_types=4, zero_genes=(), zero_block=None):
    """Negative-binomial counts with cell-type markers, so the leading PCs are well separated."""
    types = rng.integers(0, n_types, n_cells)
    base = rng.lognormal(-1.0, 1.2, n_genes)
    profile = np.tile(base, (n_types, 1))
    for t in range(n_types):
        profile[t, rng.choice(n_genes, max(2, n_genes // 15), replace=False)] *= 12
    library = rng.lognormal(0.0, 0.5, n_cells)[:, None]
    counts = rng.negative_binomial(2, 2 / (2 + library * profile[types])).astype(np.float32)
    counts[:, list(zero_genes)] = 0
    if zero_block is not None:
        rows, genes = zero_block
        counts[rows, genes] = 0
    empty = counts.sum(axis=1) == 0
    counts[empty, np.argmax(base)] = 1
    return counts, types


def write_store(path, x, types=None):
    adata = ad.AnnData(x)
    adata.obs_names = [f"c{i}" for i in range(adata.n_obs)]
    adata.var_names = [f"g{i}" for i in range(adata.n_vars)]
    if types is not None:
        adata.obs["cell_type"] = pd.Categorical([f"t{t}" for t in types])
    adata.write_zarr(path)
    return path


def assert_same_var(result, reference):
    """The HVG columns equal scanpy's bit for bit (NaN where scanpy has NaN)."""
    for column in reference.var.columns:
        ours, theirs = result.var[column].to_numpy(), reference.var[column].to_numpy()
        np.testing.assert_array_equal(ours, theirs, err_msg=column)


@pytest.fixture(scope="module")
def client():
    with dask_client(ClusterSettings(workers=2)) as shared:
        yield shared


def run_fused(client, store, out, *, task_cells, flavor, n_top_genes, n_comps, **kwargs):
    fused.run_fused(
        store,
        out,
        client=client,
        task_cells=task_cells,
        flavor=flavor,
        n_top_genes=n_top_genes,
        n_comps=n_comps,
        **kwargs,
    )
    return ad.read_zarr(out)


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_row_sums_count_what_is_not_a_count_as_the_checks_do(dtype):
    from chunkatlas.analysis._checks import block_problems

    x = random_csr(np.random.default_rng(1), 40, 20, dtype=dtype)
    bad = [-3, 0.5, np.nan, np.inf, -np.inf, -0.25] if x.dtype.kind == "f" else [-3, -1]
    x.data[: len(bad)] = bad
    _, problems = kernels._row_sums(x.indptr, x.data)
    np.testing.assert_array_equal(problems, block_problems(x))
    assert problems.sum() > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_row_sums_and_column_moments_match_numpy(dtype):
    rng = np.random.default_rng(0)
    x = random_csr(rng, 50, 30, dtype=dtype)
    np.testing.assert_array_equal(
        kernels._row_sums(x.indptr, x.data)[0], np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
    )
    sums, squares, stored = kernels._column_moments(x.indices, x.data, 30)
    dense = x.toarray()
    np.testing.assert_allclose(sums, dense.sum(axis=0, dtype=np.float64), rtol=1e-12)
    # squares are taken in the values' own type, as scanpy's kernel does
    np.testing.assert_allclose(squares, (dense * dense).sum(axis=0, dtype=np.float64), rtol=1e-12)
    np.testing.assert_array_equal(stored, (dense != 0).sum(axis=0))


def test_clipped_moments_match_numpy():
    rng = np.random.default_rng(1)
    x = random_csr(rng, 40, 20)
    clip = rng.uniform(1, 50, 20)
    sums, squares = kernels._clipped_moments(x.indices, x.data, clip)
    dense = np.minimum(x.toarray().astype(np.float64), clip)
    np.testing.assert_allclose(sums, dense.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(squares, (dense**2).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("kind", ["log1p", "log1p_expm1"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalized_values_are_scanpys_bit_for_bit(kind, dtype):
    rng = np.random.default_rng(2)
    x = random_csr(rng, 60, 40, dtype=dtype, high=3 * kernels.TABLE_COUNTS)  # table and beyond
    scale = rng.uniform(0.2, 3.0, 60).astype(dtype)
    expected = np.log1p(x.data / np.repeat(scale, np.diff(x.indptr)))
    if kind == "log1p_expm1":
        expected = np.expm1(expected)
    got = kernels.normalized_values(x.indptr, x.data, scale, kind)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)


def test_unsorted_rows_are_sorted_for_the_gram_kernel():
    rng = np.random.default_rng(11)
    x = random_csr(rng, 40, 300, density=0.3)
    shuffled_cols, shuffled_vals = x.indices.copy(), x.data.copy()
    for r in range(40):
        order = rng.permutation(x.indptr[r + 1] - x.indptr[r]) + x.indptr[r]
        shuffled_cols[x.indptr[r] : x.indptr[r + 1]] = x.indices[order]
        shuffled_vals[x.indptr[r] : x.indptr[r + 1]] = x.data[order]
    kernels._sort_rows(x.indptr, shuffled_cols, shuffled_vals)
    np.testing.assert_array_equal(shuffled_cols, x.indices)
    np.testing.assert_array_equal(shuffled_vals, x.data)


@pytest.mark.parametrize("length", [0, 1, 2, 3, 14, 41, 3000])
def test_rows_in_reverse_or_random_order_are_sorted_with_their_values(length):
    rng = np.random.default_rng(length)
    cols = np.concatenate([np.arange(length)[::-1], rng.permutation(20000)[:length]])
    cols = cols.astype(np.int32)
    values = (cols * 3).astype(np.float32)
    row_ptr = np.array([0, length, 2 * length], dtype=np.int64)
    expected = np.concatenate([np.sort(cols[:length]), np.sort(cols[length:])])
    kernels._sort_rows(row_ptr, cols, values)
    np.testing.assert_array_equal(cols, expected)
    np.testing.assert_array_equal(values, cols * 3)


def test_row_batches_cover_all_rows():
    row_ptr = np.array([0, 5, 5, 9, 30, 31, 40, 40])
    batches = tasks.row_batches(row_ptr, 10)
    assert batches[0][0] == 0 and batches[-1][1] == 7
    assert all(a[1] == b[0] for a, b in zip(batches[:-1], batches[1:], strict=True))
    assert tasks.row_batches(np.array([0]), 10) == []


def test_select_columns_matches_scipy_indexing():
    rng = np.random.default_rng(3)
    x = random_csr(rng, 30, 25)
    keep = np.sort(rng.choice(25, 9, replace=False))
    position = np.full(25, -1, dtype=np.int32)
    position[keep] = np.arange(9)
    row_ptr, cols, vals = kernels._select_columns(x.indptr, x.indices, x.data, position)
    np.testing.assert_array_equal(
        sp.csr_matrix((vals, cols, row_ptr), shape=(30, 9)).toarray(), x[:, keep].toarray()
    )


@pytest.mark.parametrize("dense", [False, True])
def test_gram_update_matches_dense_product(dense):
    rng = np.random.default_rng(4)
    width = 2 * kernels.GRAM_TILE + 5  # several tiles, the last one partial
    x = random_csr(rng, 2 * kernels.DENSE_BLOCK_ROWS + 7, width, density=0.05)
    gram = np.zeros((width, width))
    kernels.gram_update(x.indptr.astype(np.int64), x.indices, x.data, gram, dense=dense)
    dense_x = x.toarray().astype(np.float64)
    np.testing.assert_allclose(kernels.symmetric(gram), dense_x.T @ dense_x, rtol=1e-10)


def test_pca_from_gram_is_sklearns_pca():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 8)) * np.arange(8, 0, -1)
    fit = pca.pca_from_gram(x.T @ x, x.sum(axis=0), 300, 3)  # overwrites its first argument
    cov = np.cov(x, rowvar=False)
    values, vectors = np.linalg.eigh(cov)
    np.testing.assert_allclose(fit.variance, values[::-1][:3], rtol=1e-10)
    np.testing.assert_allclose(fit.variance_ratio, values[::-1][:3] / values.sum(), rtol=1e-10)
    for pc in range(3):
        assert abs(fit.components[pc] @ vectors[:, -1 - pc]) == pytest.approx(1)
        # sign: the largest loading is positive (sklearn's svd_flip with u_based_decision=False)
        assert fit.components[pc][np.argmax(np.abs(fit.components[pc]))] > 0


def test_top_eigenpairs_lanczos_agrees_with_lapack():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(700, 520))
    matrix = a.T @ a
    values, vectors = pca.top_eigenpairs(matrix, 10)  # 520 > 500: the Lanczos path
    full, basis = np.linalg.eigh(matrix)
    np.testing.assert_allclose(values, full[::-1][:10], rtol=1e-10)
    np.testing.assert_allclose(
        np.abs(np.sum(vectors * basis[:, ::-1][:, :10], axis=0)), 1, rtol=1e-8
    )


@pytest.mark.parametrize(("task_cells", "chunk"), [(1, 1000), (7, 10), (25, 3), (1000, 64)])
def test_blocks_cover_every_value_once(task_cells, chunk):
    rng = np.random.default_rng(7)
    x = random_csr(rng, 120, 30, density=0.1)
    for row in (5, 6, 50):  # cells whose values are all zero, possibly on block boundaries
        x.data[x.indptr[row] : x.indptr[row + 1]] = 0
    x.eliminate_zeros()
    layout = plan.StoredX(
        "x",
        120,
        30,
        True,
        np.dtype(np.float32),
        nnz=x.nnz,
        data_chunk=chunk,
        indptr=x.indptr.astype(np.int64),
    )
    blocks = plan.plan_blocks(layout, task_cells)
    assert blocks[0].entry_start == 0 and blocks[-1].entry_stop == x.nnz
    row_sums = np.zeros(120)
    for before, after in zip(blocks[:-1], blocks[1:], strict=True):
        assert before.entry_stop == after.entry_start
        assert before.last_partial == after.first_partial
    for block in blocks:
        assert (block.entry_start % chunk == 0) or chunk > task_cells * x.nnz / 120
        piece = x.data[block.entry_start : block.entry_stop]
        row_sums[block.row_start : block.row_stop] += kernels._row_sums(block.row_ptr, piece)[0]
    np.testing.assert_array_equal(row_sums, np.asarray(x.sum(axis=1)).ravel())


def test_row_writer_adds_shared_rows_and_fills_empty_ones(tmp_path):
    import zarr

    array = zarr.open_array(
        tmp_path / "a.zarr", mode="w", shape=(10, 2), chunks=(3, 2), dtype="float32"
    )
    writer = projection.RowWriter(array, np.array([1.0, 1.0]))
    writer.add(1, np.ones((3, 2)))  # rows 1-3, row 3 shared
    writer.add(3, np.ones((2, 2)))  # rows 3-4
    writer.add(4, np.ones((1, 2)))  # row 4 again (a row spread over three blocks)
    writer.add(7, np.ones((1, 2)))
    writer.close()
    expected = np.array([0, 1, 1, 2, 2, 0, 0, 1, 0, 0], dtype=np.float32) - 1
    np.testing.assert_array_equal(array[:, 0], expected)


# ----------------------------------------------------------------------------- the oracle


@pytest.mark.parametrize(
    ("flavor", "n_top_genes", "n_comps", "task_cells"),
    [
        ("seurat", 150, 25, 200),
        ("seurat", 60, 20, 333),  # tasks that do not divide n_obs
        ("cell_ranger", 150, 25, 200),
        ("cell_ranger", 90, 30, 1000),  # one task
        ("seurat_v3", 150, 25, 200),
        ("seurat_v3", 200, 40, 90),
    ],
)
def test_fused_matches_in_memory_scanpy(
    client, consolidated, tmp_path, flavor, n_top_genes, n_comps, task_cells
):
    store, _ = consolidated
    result = run_fused(
        client,
        store,
        tmp_path / "hvg_pca.zarr",
        task_cells=task_cells,
        flavor=flavor,
        n_top_genes=n_top_genes,
        n_comps=n_comps,
    )
    reference = in_memory_reference(store, flavor, n_top_genes, n_comps)
    assert_matches_reference(result, reference)
    assert_same_var(result, reference)
    assert result.X is None
    assert result.var["highly_variable"].sum() == reference.var["highly_variable"].sum()
    assert result.obsm["X_pca"].dtype == np.float32
    assert result.varm["PCs"].shape == (result.n_vars, n_comps)
    assert np.all(result.varm["PCs"][~result.var["highly_variable"].to_numpy()] == 0)
    assert result.uns["hvg"] == {"flavor": flavor}
    assert result.uns["pca"]["params"] == reference.uns["pca"]["params"]
    np.testing.assert_allclose(
        result.uns["pca"]["variance"], reference.uns["pca"]["variance"], rtol=1e-3
    )
    np.testing.assert_allclose(
        result.uns["pca"]["variance_ratio"], reference.uns["pca"]["variance_ratio"], rtol=1e-3
    )
    # deterministic signs: each PC's largest loading is positive, as in-memory scanpy's
    pcs = result.varm["PCs"]
    assert np.all(pcs[np.argmax(np.abs(pcs), axis=0), np.arange(n_comps)] > 0)
    pd.testing.assert_frame_equal(result.obs, reference.obs)


#: With batches, seurat_v3's selection follows a loess fit per batch, which turns a difference
#: of 1e-15 in a batch's gene variances into about 1e-3 in the fit, and so into a few changed
#: ranks (scanpy on Dask differs from scanpy in memory that much).  The fused engine runs scanpy's
#: Welford recurrence through each batch's cells in order, so it equals scanpy bit for bit; where
#: batches interleave cell by cell it sums their moments block by block instead, and is held to
#: these tolerances in the columns that follow the fit.
LOESS_FOLLOWERS = {"highly_variable_rank": {"atol": 4}, "variances_norm": {"rtol": 2e-2}}


@pytest.fixture(scope="module")
def batched_store(tmp_path_factory):
    """Counts of 1,500 cells in three batches with their own gene shifts: batch "b" first, then
    "a", then "a" and "c" interleaved cell by cell, then "c" (tasks meet one batch, or two at
    once)."""
    rng = np.random.default_rng(12)
    counts, types = counts_with_types(rng, 1500, 300, zero_genes=(3,))
    batch = np.array(["b"] * 600 + ["a"] * 300 + ["a", "c"] * 150 + ["c"] * 300)
    for name in "abc":
        cells = batch == name
        shifted = rng.choice(300, 25, replace=False)
        counts[np.ix_(cells, shifted)] = rng.poisson(counts[np.ix_(cells, shifted)] * 4)
    counts[batch == "a", 7] = 0  # a gene batch "a" does not express
    path = write_store(tmp_path_factory.mktemp("batched") / "store.zarr", counts, types)
    adata = ad.read_zarr(path)
    adata.obs["batch"] = pd.Categorical(batch, categories=["c", "b", "a"])  # not sorted
    path.rename(path.with_suffix(".old"))
    adata.write_zarr(path)
    return path


@pytest.mark.parametrize("flavor", ["seurat", "cell_ranger", "seurat_v3", "seurat_v3_paper"])
@pytest.mark.parametrize("task_cells", [170, 2000])
def test_batch_aware_hvgs_equal_in_memory_scanpy(
    client, batched_store, tmp_path, flavor, task_cells
):
    store = batched_store
    result = run_fused(
        client,
        store,
        tmp_path / "hvg_pca.zarr",
        task_cells=task_cells,
        flavor=flavor,
        n_top_genes=80,
        n_comps=15,
        batch_key="batch",
    )
    reference = in_memory_reference(store, flavor, 80, 15, batch_key="batch")
    assert_matches_reference(result, reference)
    assert list(result.var.columns) == list(reference.var.columns)
    assert "highly_variable_nbatches" in result.var
    for column in reference.var.columns:
        ours, theirs = result.var[column].to_numpy(), reference.var[column].to_numpy()
        assert ours.dtype == theirs.dtype, column
        np.testing.assert_array_equal(ours, theirs, err_msg=column)
    assert result.uns["hvg"] == {"flavor": flavor}


def test_interleaved_batches_sum_their_moments_within_the_loess_tolerance(
    client, batched_store, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(context, "EXTRA_DECODES", 0)  # as if every block held every batch
    monkeypatch.setattr(context, "MIN_EXTRA_DECODES", 0)
    result = run_fused(
        client,
        batched_store,
        tmp_path / "hvg_pca.zarr",
        task_cells=170,
        flavor="seurat_v3",
        n_top_genes=80,
        n_comps=15,
        batch_key="batch",
    )
    assert "batches smaller than the tasks or interleaved" in caplog.text
    reference = in_memory_reference(batched_store, "seurat_v3", 80, 15, batch_key="batch")
    assert_matches_reference(result, reference)
    for column in reference.var.columns:
        ours, theirs = result.var[column].to_numpy(), reference.var[column].to_numpy()
        if column in LOESS_FOLLOWERS:
            np.testing.assert_allclose(ours, theirs, **LOESS_FOLLOWERS[column], err_msg=column)
        else:
            np.testing.assert_array_equal(ours, theirs, err_msg=column)


def test_seurat_v3_paper_without_batches_is_seurat_v3s_selection(client, consolidated, tmp_path):
    store, _ = consolidated
    results = {
        flavor: run_fused(
            client,
            store,
            tmp_path / f"{flavor}.zarr",
            task_cells=200,
            flavor=flavor,
            n_top_genes=60,
            n_comps=10,
        )
        for flavor in ("seurat_v3", "seurat_v3_paper")
    }
    reference = in_memory_reference(store, "seurat_v3_paper", 60, 10)
    assert_same_var(results["seurat_v3_paper"], reference)
    assert "highly_variable_nbatches" not in results["seurat_v3_paper"].var
    np.testing.assert_array_equal(
        results["seurat_v3"].var["highly_variable"],
        results["seurat_v3_paper"].var["highly_variable"],
    )


@pytest.mark.parametrize("flavor", ["seurat", "seurat_v3"])
def test_one_cell_per_task_unexpressed_genes_and_empty_cells(client, tmp_path, flavor):
    rng = np.random.default_rng(8)
    counts, types = counts_with_types(
        rng, 48, 70, zero_genes=(3, 4, 5), zero_block=(slice(0, 24), slice(10, 20))
    )
    counts[[0, 23, 47]] = 0  # cells without counts, at the edges and on a boundary
    store = write_store(tmp_path / "in.zarr", sp.csr_matrix(counts), types)
    with pytest.warns(UserWarning, match="zero counts"):
        reference = in_memory_reference(store, flavor, 30, 6)
    for task_cells in (1, 13):
        result = run_fused(
            client,
            store,
            tmp_path / f"out-{task_cells}.zarr",
            task_cells=task_cells,
            flavor=flavor,
            n_top_genes=30,
            n_comps=6,
        )
        assert_same_var(result, reference)
        assert_matches_reference(result, reference, n_pcs=4)


@pytest.mark.parametrize("flavor", ["seurat", "cell_ranger"])
def test_library_sizes_recorded_in_obs_spare_pass_one_and_are_checked(
    client, tmp_path, caplog, flavor
):
    """A store whose obs has raw_sum (as the Census has) is analysed in one pass fewer, with
    results identical to those without it; a wrong raw_sum costs pass 2 again, never a wrong
    result."""
    rng = np.random.default_rng(11)
    counts, types = counts_with_types(rng, 300, 120)
    counts[[5, 150]] = 0  # cells without counts
    x = sp.csr_matrix(counts)
    plain = write_store(tmp_path / "plain.zarr", x, types)
    adata = ad.read_zarr(plain)
    adata.obs["raw_sum"] = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
    adata.write_zarr(tmp_path / "recorded.zarr")
    adata.obs.loc[adata.obs_names[7], "raw_sum"] += 1  # one cell's record is wrong
    adata.write_zarr(tmp_path / "wrong.zarr")
    results, passes = {}, {}
    for name in ("plain", "recorded", "wrong"):
        with caplog.at_level("WARNING", logger="chunkatlas.analysis.fused._moments"):
            result = run_fused(
                client,
                tmp_path / f"{name}.zarr",
                tmp_path / f"{name}-out.zarr",
                task_cells=70,
                flavor=flavor,
                n_top_genes=40,
                n_comps=8,
            )
        results[name], passes[name] = result, set(result.uns["chunkatlas"]["passes"])
    assert "library_sizes" in passes["plain"]
    assert "library_sizes" not in passes["recorded"] and "moments_again" not in passes["recorded"]
    assert {"moments", "moments_again"} <= passes["wrong"] - {"library_sizes"}
    assert "obs 'raw_sum' of cell 7 is" in caplog.text
    for name in ("recorded", "wrong"):
        np.testing.assert_array_equal(results[name].obsm["X_pca"], results["plain"].obsm["X_pca"])
        assert_same_var(results[name], results["plain"])


def test_hvg_values_in_memory_on_disk_or_read_again_agree(client, tmp_path, monkeypatch):
    """Pass 4 projects the HVG values pass 3 kept: in memory, or on the workers' local disks
    past the budget (X is decoded twice in all), or, where they are gone, from X read again."""
    rng = np.random.default_rng(9)
    counts, types = counts_with_types(rng, 300, 120)
    sparse_store = write_store(tmp_path / "csr.zarr", sp.csr_matrix(counts), types)
    dense_store = write_store(tmp_path / "dense.zarr", counts, types)
    options = {"task_cells": 40, "flavor": "seurat", "n_top_genes": 50, "n_comps": 8}
    kept = run_fused(client, sparse_store, tmp_path / "kept.zarr", **options)
    on_disk = run_fused(client, sparse_store, tmp_path / "disk.zarr", keep_budget_mb=0, **options)
    left = client.run(lambda: [p.name for p in stash.scratch_dir().iterdir()])
    assert not any(left.values())  # the files are gone after pass 4
    for result in (kept, on_disk):
        steps = result.uns["chunkatlas"]["passes"]
        assert steps["projection"]["requests"] == 0  # X not decoded a third time
        assert steps["gram"]["requests"] == steps["moments"]["requests"]
    original = gram.pca_from_gram

    def forget_then_fit(*args):  # the workers lose what they kept (as a restarted one would)
        client.run(
            lambda: __import__("chunkatlas.analysis.fused._stash", fromlist=["clear"])._kept.clear()
        )
        return original(*args)

    with monkeypatch.context() as patch:
        patch.setattr(gram, "pca_from_gram", forget_then_fit)
        reread = run_fused(client, sparse_store, tmp_path / "reread.zarr", **options)
    assert reread.uns["chunkatlas"]["passes"]["projection"]["requests"] > 0
    dense = run_fused(
        client, dense_store, tmp_path / "dense-out.zarr", **{**options, "task_cells": 70}
    )
    for result in (on_disk, reread):
        np.testing.assert_array_equal(kept.obsm["X_pca"], result.obsm["X_pca"])
    assert_same_var(dense, kept)
    np.testing.assert_allclose(dense.obsm["X_pca"], kept.obsm["X_pca"], rtol=1e-4, atol=1e-4)
    assert_matches_reference(kept, in_memory_reference(sparse_store, "seurat", 50, 8), n_pcs=5)


def test_hvg_tables_equal_scanpys_on_the_same_moments():
    """The pure HVG functions against scanpy's own highly_variable_genes."""
    rng = np.random.default_rng(10)
    counts, _ = counts_with_types(rng, 400, 150, zero_genes=(0, 1))
    adata = ad.AnnData(sp.csr_matrix(counts))
    v3 = sc.pp.highly_variable_genes(adata, flavor="seurat_v3", n_top_genes=40, inplace=False)
    x = adata.X
    mean, var = hvg.mean_var(*kernels._column_moments(x.indices, x.data, 150)[:2], 400)
    reg_std, clip = hvg.seurat_v3_clip(mean, var, 400)
    clipped = kernels._clipped_moments(x.indices, x.data, clip)
    norm_var = hvg.normalised_variance(mean, reg_std, *clipped, 400)
    table = hvg.seurat_v3_columns(mean, var, norm_var[None], "seurat_v3", 40, batched=False)
    for column in table.columns:
        np.testing.assert_array_equal(table[column].to_numpy(), v3[column].to_numpy())
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    for flavor in ("seurat", "cell_ranger"):
        expected = sc.pp.highly_variable_genes(adata, flavor=flavor, n_top_genes=40, inplace=False)
        values = adata.X.data if flavor == "cell_ranger" else np.expm1(adata.X.data)
        sums, squares, _ = kernels._column_moments(adata.X.indices, values, 150)
        table = hvg.dispersion_table(*hvg.mean_var(sums, squares, 400), flavor, 40)
        for column in table.columns:  # inplace=False leaves dispersions_norm in float64
            theirs = expected[column].to_numpy()
            np.testing.assert_array_equal(table[column].to_numpy(), theirs, err_msg=column)


def test_compensated_mean_is_pandas_groupby_mean_bit_for_bit():
    """How scanpy merges the batches' HVG columns: pandas' groupby mean, NaN skipped."""
    rng = np.random.default_rng(4)
    rows = rng.lognormal(0, 3, (7, 500)) * rng.choice([-1, 1], (7, 500))
    rows[rng.random(rows.shape) < 0.2] = np.nan
    rows[:, :3] = np.nan  # a column all NaN
    rows[2, 10], rows[4, 11], rows[5, 11] = np.inf, -np.inf, np.inf
    long = pd.DataFrame({"value": rows.ravel()}, index=np.tile(np.arange(500), 7))
    expected = long.groupby(long.index).agg({"value": "mean"})["value"].to_numpy()
    np.testing.assert_array_equal(hvg.compensated_mean(rows), expected)


# ----------------------------------------------------------------------------- user errors


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        (AnalysisParams(engine="gpu"), "analysis engine 'gpu' is not one of fused, scanpy"),
        (
            AnalysisParams(flavor="pearson"),
            "HVG flavor 'pearson' is not one of seurat, cell_ranger, seurat_v3, seurat_v3_paper "
            "for engine 'fused'",
        ),
    ],
)
def test_bad_engine_or_flavor_is_one_line(consolidated, tmp_path, params, needle):
    store, _ = consolidated
    with pytest.raises(ChunkatlasError) as err:
        analyze_store(store, tmp_path / "out.zarr", task_cells=100, params=params)
    assert str(err.value) == needle
    assert list(tmp_path.iterdir()) == []


def test_csc_x_is_refused_with_the_way_out(tmp_path):
    x = sp.csc_matrix(np.eye(20, 10, dtype=np.float32))
    store = write_store(tmp_path / "csc.zarr", x)
    with pytest.raises(ChunkatlasError, match="not 'csc_matrix'; analyse the cell-major store"):
        fused.open_stored_x(store)


# ----------------------------------------------------------------------------- start-up


def test_driver_opens_stores_without_importing_anndata():
    """The analysis driver imports anndata in a thread while the cluster starts; opening the
    store and checking its manifest must not import it first."""
    code = (
        "import sys; import chunkatlas.analysis.fused, chunkatlas.rewrite._consolidate; "
        "print(sorted(m for m in ('anndata', 'pandas', 'scanpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_local_workers_load_the_kernels_as_they_start():
    def loaded():
        return "numba" in sys.modules

    with dask_client(
        ClusterSettings(memory_mb=1024), preload=("chunkatlas.analysis.fused",)
    ) as warm:
        assert all(warm.run(loaded).values())
    with dask_client(ClusterSettings(memory_mb=1024)) as cold:
        assert not any(cold.run(loaded).values())
