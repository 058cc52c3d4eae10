"""Tests of the Census-shaped demo atlas generator (chunkatlas.ingest.demo)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from chunkatlas.errors import ChunkatlasError
from chunkatlas.ingest.demo import (
    DemoSpec,
    DemoSpecError,
    simulate_counts,
    simulate_obs,
    simulate_var,
    write_demo_atlas,
)
from chunkatlas.ingest.demo import _soma as demo_soma

SMALL = DemoSpec(n_cells=3_000, n_genes=500, seed=0, block_cells=1_000)

OBS_COLUMNS = {
    "soma_joinid",
    "tissue_general",
    "tissue",
    "is_primary_data",
    "cell_type",
    "disease",
    "assay",
    "donor_id",
    "dataset_id",
    "sex",
}
VAR_COLUMNS = {"soma_joinid", "feature_id", "feature_name", "feature_length"}
TOTAL_COLUMNS = {"raw_sum", "nnz"}  # written from each block's counts, as in the Census


@pytest.fixture(scope="module")
def obs() -> pd.DataFrame:
    return simulate_obs(SMALL)


@pytest.fixture(scope="module")
def counts(obs: pd.DataFrame) -> sp.csr_matrix:
    return simulate_counts(SMALL, obs, 0, SMALL.n_cells)


@pytest.fixture(scope="module")
def library(counts: sp.csr_matrix) -> np.ndarray:
    return np.asarray(counts.sum(axis=1)).ravel()


def _log_normalised(counts: sp.csr_matrix) -> np.ndarray:
    """log1p of counts per 10,000, as a dense array."""
    dense = counts.toarray().astype(np.float64)
    return np.log1p(dense / np.maximum(dense.sum(axis=1, keepdims=True), 1.0) * 1e4)


# --------------------------------------------------------------------------- spec


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"n_cells": 0}, "n_cells"),
        ({"n_cells": 3000.0}, "n_cells"),
        ({"n_genes": 199}, "n_genes"),
        ({"seed": -1}, "seed"),
        ({"primary_fraction": 0.0}, "primary_fraction"),
        ({"primary_fraction": 1.01}, "primary_fraction"),
        ({"tissues": ("lung", "blood")}, "tissues"),
        ({"tissues": ("lung", "blood", "lung")}, "tissues"),
        ({"tissues": "lung"}, "tissues"),
        ({"block_cells": 0}, "block_cells"),
    ],
)
def test_invalid_spec_raises_one_line_naming_field(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field) as info:
        dataclasses.replace(SMALL, **changes)
    assert isinstance(info.value, DemoSpecError)
    assert isinstance(info.value, ChunkatlasError)  # printed as one line by the CLI
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{field}=")


def test_tissues_from_a_yaml_list_are_accepted() -> None:
    spec = DemoSpec(n_cells=100, n_genes=200, tissues=["lung", "blood", "brain"])
    assert spec.tissues == ("lung", "blood", "brain")


def test_default_spec_matches_documented_defaults() -> None:
    spec = DemoSpec()
    assert (spec.n_cells, spec.n_genes, spec.seed) == (30_000, 2_000, 0)
    assert spec.tissues == ("lung", "blood", "brain")
    assert (spec.primary_fraction, spec.block_cells) == (0.9, 5_000)


# --------------------------------------------------------------------------- obs / var


def test_obs_columns_and_types(obs: pd.DataFrame) -> None:
    assert len(obs) == SMALL.n_cells
    assert set(obs.columns) == OBS_COLUMNS - {"soma_joinid"}
    assert obs["is_primary_data"].dtype == bool
    for column in OBS_COLUMNS - {"soma_joinid", "is_primary_data"}:
        assert obs[column].map(type).eq(str).all(), column
    assert obs.index.equals(pd.RangeIndex(SMALL.n_cells))


def test_every_tissue_has_cells_and_sub_tissues(obs: pd.DataFrame) -> None:
    per_tissue = obs["tissue_general"].value_counts()
    assert set(per_tissue.index) == set(SMALL.tissues)
    assert per_tissue.min() >= 0.15 * SMALL.n_cells
    assert obs.groupby("tissue_general")["tissue"].nunique().min() >= 2


def test_cell_types_are_many_and_unbalanced(obs: pd.DataFrame) -> None:
    per_type = obs["cell_type"].value_counts()
    assert len(per_type) >= 12  # so a ten-commonest plot has "other" cells
    assert per_type.iloc[0] >= 5 * per_type.iloc[-1]
    assert per_type.iloc[10:].sum() > 0
    shared = obs.groupby("cell_type")["tissue_general"].nunique()
    assert (shared >= 2).any()  # e.g. T cells in lung and blood


def test_datasets_donors_and_assays(obs: pd.DataFrame) -> None:
    assert obs["dataset_id"].nunique() >= len(SMALL.tissues)
    assert obs.groupby("dataset_id")["tissue_general"].nunique().max() == 1
    assert obs.groupby("dataset_id")["assay"].nunique().max() == 1
    assert obs.groupby("donor_id")["sex"].nunique().max() == 1
    assert obs["donor_id"].nunique() > obs["dataset_id"].nunique()
    # Cells are stored grouped by dataset, as in the Census.
    changes = (obs["dataset_id"] != obs["dataset_id"].shift()).sum()
    assert changes == obs["dataset_id"].nunique()


@pytest.mark.parametrize("fraction", [0.9, 0.75, 1.0])
def test_primary_fraction(fraction: float) -> None:
    spec = dataclasses.replace(SMALL, primary_fraction=fraction)
    obs = simulate_obs(spec)
    primary = obs["is_primary_data"]
    assert abs(primary.mean() - fraction) <= 0.03
    if fraction < 1.0:
        assert (~primary).sum() > 0
        # Non-primary cells are spread over tissues, not one block.
        assert obs.loc[~primary, "tissue_general"].nunique() == len(spec.tissues)


def test_var_columns_and_values() -> None:
    var = simulate_var(SMALL)
    assert list(var.columns) == ["feature_id", "feature_name", "feature_length"]
    assert len(var) == SMALL.n_genes
    assert var["feature_id"].iloc[0] == "ENSG00000000001"
    assert var["feature_id"].str.fullmatch(r"ENSG\d{11}").all()
    assert var["feature_id"].is_unique
    # schema 2.4.0: a symbol may name two genes (every 97th gene shares the one before's)
    shared = var["feature_name"][var["feature_name"].duplicated(keep=False)]
    assert len(shared) == 2 * (SMALL.n_genes // 97) and shared.nunique() == SMALL.n_genes // 97
    assert var["feature_length"].dtype == np.int64
    assert (var["feature_length"] > 0).all()


def test_unknown_tissues_get_generic_cell_types() -> None:
    spec = dataclasses.replace(SMALL, tissues=("liver", "kidney", "heart"))
    obs = simulate_obs(spec)
    assert set(obs["tissue_general"]) == {"liver", "kidney", "heart"}
    assert obs["cell_type"].nunique() >= 8
    counts = simulate_counts(spec, obs, 0, 500)
    assert counts.shape == (500, spec.n_genes)


# --------------------------------------------------------------------------- counts


def test_counts_are_nonnegative_integer_float32(counts: sp.csr_matrix) -> None:
    assert isinstance(counts, sp.csr_matrix)
    assert counts.shape == (SMALL.n_cells, SMALL.n_genes)
    assert counts.dtype == np.float32
    assert (counts.data > 0).all()  # explicit zeros are not stored
    assert np.array_equal(counts.data, np.round(counts.data))


def test_no_cell_is_empty_even_with_the_smallest_panel() -> None:
    spec = DemoSpec(n_cells=2_000, n_genes=200, seed=0)
    counts = simulate_counts(spec, simulate_obs(spec), 0, spec.n_cells)
    assert np.asarray(counts.sum(axis=1)).min() >= 1


def test_sparsity_in_census_like_range(counts: sp.csr_matrix) -> None:
    density = counts.nnz / (counts.shape[0] * counts.shape[1])
    assert 0.03 <= density <= 0.10


def test_library_sizes_span_an_order_of_magnitude(library: np.ndarray) -> None:
    low, high = np.percentile(library, [5, 95])
    assert low > 0
    assert high / low >= 10


def test_gene_expression_is_heavy_tailed(counts: sp.csr_matrix) -> None:
    gene_totals = np.sort(np.asarray(counts.sum(axis=0)).ravel())[::-1]
    top = gene_totals[: SMALL.n_genes // 20].sum() / gene_totals.sum()
    assert top >= 0.3  # top 5 % of genes hold at least 30 % of counts
    assert np.median(gene_totals) < 0.25 * gene_totals.mean()


def test_counts_are_overdispersed_within_a_cell_type(
    obs: pd.DataFrame, counts: sp.csr_matrix, library: np.ndarray
) -> None:
    cell_type = obs["cell_type"].value_counts().index[0]
    rows = (obs["cell_type"] == cell_type).to_numpy()
    block = counts[rows].toarray().astype(np.float64)
    scale = library[rows] / np.median(library[rows])
    normalised = block / scale[:, None]  # remove library-size variation
    mean = normalised.mean(axis=0)
    moderate = (mean > 0.5) & (mean < 50)
    assert moderate.sum() >= 10
    ratio = normalised.var(axis=0)[moderate] / mean[moderate]
    assert np.median(ratio) > 1.5
    assert (ratio > 1).mean() > 0.8


def test_pca_separates_cell_types(obs: pd.DataFrame, counts: sp.csr_matrix) -> None:
    values = _log_normalised(counts)
    values -= values.mean(axis=0)
    _, vectors = np.linalg.eigh(values.T @ values)  # ascending eigenvalues
    pcs = values @ vectors[:, ::-1][:, :10]  # scores on the first 10 PCs
    labels = obs["cell_type"].to_numpy()
    types = np.unique(labels)
    centroids = np.stack([pcs[labels == t].mean(axis=0) for t in types])
    distance = ((pcs[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    accuracy = (types[distance.argmin(axis=1)] == labels).mean()
    assert accuracy >= 0.9


def test_marker_genes_are_cell_type_specific(obs: pd.DataFrame, counts: sp.csr_matrix) -> None:
    values = _log_normalised(counts)
    labels = obs["cell_type"].to_numpy()
    for cell_type in obs["cell_type"].value_counts().index[:5]:
        inside = values[labels == cell_type].mean(axis=0)
        outside = values[labels != cell_type].mean(axis=0)
        assert ((inside - outside) > 2.0).sum() >= 5, cell_type


def test_same_seed_same_counts_other_seed_differs(obs: pd.DataFrame) -> None:
    first = simulate_counts(SMALL, obs, 100, 700)
    again = simulate_counts(SMALL, simulate_obs(SMALL), 100, 700)
    assert (first != again).nnz == 0
    other = dataclasses.replace(SMALL, seed=SMALL.seed + 1)
    different = simulate_counts(other, simulate_obs(other), 100, 700)
    assert (first != different).nnz > 0
    assert not simulate_var(other).equals(simulate_var(SMALL))


def test_counts_do_not_depend_on_block_boundaries(obs: pd.DataFrame, counts: sp.csr_matrix) -> None:
    pieces = [simulate_counts(SMALL, obs, a, b) for a, b in [(0, 1), (1, 777), (777, 3_000)]]
    assert (sp.vstack(pieces, format="csr") != counts).nnz == 0
    assert simulate_counts(SMALL, obs, 5, 5).shape == (0, SMALL.n_genes)


def test_counts_reject_bad_ranges(obs: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="range"):
        simulate_counts(SMALL, obs, 10, 5)
    with pytest.raises(ValueError, match="range"):
        simulate_counts(SMALL, obs, 0, SMALL.n_cells + 1)
    with pytest.raises(ValueError, match="rows"):
        simulate_counts(SMALL, obs.iloc[:10], 0, 5)


# --------------------------------------------------------------------------- writing


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    uri = tmp_path_factory.mktemp("atlas") / "demo.soma"
    return uri, write_demo_atlas(str(uri), SMALL)


def test_written_experiment_reads_back(
    written: tuple[Path, dict], obs: pd.DataFrame, counts: sp.csr_matrix
) -> None:
    tiledbsoma = pytest.importorskip("tiledbsoma")
    uri, summary = written
    with tiledbsoma.Experiment.open(str(uri)) as exp:
        stored_obs = exp.obs.read().concat().to_pandas()
        rna = exp.ms["RNA"]
        stored_var = rna.var.read().concat().to_pandas()
        raw = rna.X["raw"]
        assert raw.shape == (SMALL.n_cells, SMALL.n_genes)
        assert raw.nnz == counts.nnz == summary["nnz"]
        table = raw.read().tables().concat()
    assert set(stored_obs.columns) == OBS_COLUMNS | TOTAL_COLUMNS
    assert VAR_COLUMNS <= set(stored_var.columns)
    assert stored_obs["soma_joinid"].tolist() == list(range(SMALL.n_cells))
    assert stored_obs["is_primary_data"].dtype == bool
    pd.testing.assert_frame_equal(
        stored_obs.drop(columns="soma_joinid")[list(obs.columns)], obs, check_dtype=False
    )
    stored = sp.csr_matrix(
        (
            table["soma_data"].to_numpy(),
            (table["soma_dim_0"].to_numpy(), table["soma_dim_1"].to_numpy()),
        ),
        shape=(SMALL.n_cells, SMALL.n_genes),
    )
    assert stored.dtype == np.float32
    assert (stored != counts).nnz == 0


def test_written_obs_holds_each_cells_raw_sum_and_nnz(
    written: tuple[Path, dict], counts: sp.csr_matrix
) -> None:
    tiledbsoma = pytest.importorskip("tiledbsoma")
    uri, _ = written
    with tiledbsoma.Experiment.open(str(uri)) as exp:
        stored_obs = exp.obs.read().concat().to_pandas().sort_values("soma_joinid")
    assert stored_obs["raw_sum"].dtype == np.float64
    assert stored_obs["nnz"].dtype == np.int64
    # exact: the counts are integers, summed in float64
    np.testing.assert_array_equal(stored_obs["raw_sum"], np.asarray(counts.sum(axis=1)).ravel())
    np.testing.assert_array_equal(stored_obs["nnz"], np.diff(counts.indptr))


def test_same_seed_same_written_obs(written: tuple[Path, dict], tmp_path: Path) -> None:
    tiledbsoma = pytest.importorskip("tiledbsoma")
    uri, _ = written
    again = tmp_path / "again.soma"
    write_demo_atlas(str(again), dataclasses.replace(SMALL, block_cells=700))
    frames = []
    for where in (uri, again):
        with tiledbsoma.Experiment.open(str(where)) as exp:
            frames.append(exp.obs.read().concat().to_pandas().sort_values("soma_joinid"))
    pd.testing.assert_frame_equal(
        frames[0].reset_index(drop=True), frames[1].reset_index(drop=True)
    )


def test_summary_matches_data(written: tuple[Path, dict], obs: pd.DataFrame) -> None:
    _, summary = written
    assert summary["n_cells"] == SMALL.n_cells
    assert summary["n_genes"] == SMALL.n_genes
    assert summary["n_primary"] == int(obs["is_primary_data"].sum())
    expected = obs["tissue_general"].value_counts().to_dict()
    assert summary["cells_per_tissue_general"] == expected
    assert sum(summary["cells_per_tissue_general"].values()) == SMALL.n_cells


def test_no_temporary_left_after_success(written: tuple[Path, dict]) -> None:
    uri, _ = written
    assert sorted(os.listdir(uri.parent)) == [uri.name]


def test_refuses_to_overwrite(written: tuple[Path, dict], tmp_path: Path) -> None:
    uri, _ = written
    before = sorted(p.name for p in uri.rglob("*"))
    with pytest.raises(ChunkatlasError, match="exists"):
        write_demo_atlas(str(uri), SMALL)
    assert sorted(p.name for p in uri.rglob("*")) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ChunkatlasError, match="exists"):
        write_demo_atlas(str(empty), SMALL)


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = demo_soma.simulate_counts
    calls = []

    def failing(spec: DemoSpec, obs: pd.DataFrame, start: int, stop: int) -> sp.csr_matrix:
        calls.append(start)
        if len(calls) > 1:
            raise RuntimeError("killed mid-write")
        return real(spec, obs, start, stop)

    monkeypatch.setattr(demo_soma, "simulate_counts", failing)
    uri = tmp_path / "demo.soma"
    spec = dataclasses.replace(SMALL, n_cells=600, block_cells=200)
    with pytest.raises(RuntimeError, match="killed"):
        write_demo_atlas(str(uri), spec)
    assert os.listdir(tmp_path) == []


def test_remote_uri_is_refused() -> None:
    with pytest.raises(DemoSpecError, match="local"):
        write_demo_atlas("s3://bucket/demo.soma", SMALL)
