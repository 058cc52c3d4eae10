"""The steps: each refuses what would fail later before its work (the analysis before its
cluster starts), and cells per task are decided by one rule, the store's geometry."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import zarr

from chunkatlas import steps
from chunkatlas.analysis import AnalysisParams, ClusterSettings
from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import cells_per_task_of

#: A cluster that cannot start: a check that lets the analysis reach it fails differently.
NO_CLUSTER = ClusterSettings(scheduler_address="tcp://127.0.0.1:9", connect_timeout=1)


@pytest.fixture(scope="module")
def counts_store(tmp_path_factory):
    """300 cells x 120 genes of counts, with a cell_type column, as a zarr store."""
    where = tmp_path_factory.mktemp("steps")
    rng = np.random.default_rng(1)
    counts = sp.csr_matrix(rng.negative_binomial(1, 0.7, size=(300, 120)).astype(np.float32))
    adata = ad.AnnData(counts)
    adata.obs["cell_type"] = rng.choice(["x", "y"], 300)
    adata.write_zarr(where / "counts.zarr")
    adata.write_h5ad(where / "counts.h5ad")
    return where


def analyze(store, out, **options):
    params = options.pop("params", AnalysisParams(n_top_genes=40, n_comps=10))
    return steps.analyze(store, out, params=params, cluster=NO_CLUSTER, zarr_format=3, **options)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"store": "counts.h5ad"}, "is an h5ad file"),
        ({"out": "counts.zarr"}, "output already exists"),
        ({"figure": "counts.zarr"}, "output already exists"),
        ({"figure": "pca.png", "label_key": "colour"}, "analysis.label_key 'colour' is not an"),
        ({"params": AnalysisParams(n_top_genes=500)}, "n_top_genes 500 must be between 1 and"),
        ({"params": AnalysisParams(n_top_genes=40, n_comps=40)}, "n_comps 40 must be below"),
    ],
    ids=["h5ad", "out", "figure", "label_key", "n_top_genes", "n_comps"],
)
def test_analyze_refuses_before_the_cluster_starts(counts_store, change, needle):
    options = {"store": "counts.zarr", "out": "out.zarr", **change}
    store, out = counts_store / options.pop("store"), counts_store / options.pop("out")
    if "figure" in options:
        options["figure"] = counts_store / options["figure"]
    with pytest.raises(ChunkatlasError) as raised:
        analyze(store, out, **options)
    assert needle in str(raised.value) and "\n" not in str(raised.value)
    assert not (counts_store / "out.zarr").exists()


def test_cells_per_task_are_the_stores_own(consolidated, caplog):
    store, _ = consolidated
    x = zarr.open_group(store, mode="r")["X"]
    assert steps.cells_per_task(store) == cells_per_task_of(x)[0] == 200
    assert steps.cells_per_task(store, 120) == 120
    assert "120 cells per task splits X's stored objects" in caplog.text


def test_a_missing_local_source_is_refused_by_fetch(tmp_path):
    from chunkatlas.ingest import SourceSettings
    from chunkatlas.store import RemoteSettings

    source = SourceSettings(uri=str(tmp_path / "nowhere.soma"))
    with pytest.raises(ChunkatlasError, match=r"^source: '.*nowhere.soma' does not exist"):
        steps.fetch(source, "lung", tmp_path / "lung.zarr", remote=RemoteSettings(), zarr_format=3)


def test_advise_without_a_source_needs_cells(tmp_path):
    with pytest.raises(ChunkatlasError, match="advise needs a SOURCE"):
        steps.advise(None, backend="s3", directory=tmp_path)
    with pytest.raises(ChunkatlasError, match="--values-per-cell 30 is more than"):
        steps.advise(None, backend="s3", cells=10, genes=20, values_per_cell=30, directory=tmp_path)
    text = steps.advise(None, backend="s3", cells=100_000, directory=tmp_path)
    assert text.startswith("cost model: the reference model shipped with chunkatlas")


def test_a_judged_model_without_a_fit_for_a_backend_is_refused(tmp_path):
    from chunkatlas.model import load_cost_model

    reference = load_cost_model()
    http_only = type(reference.fit)({"http": reference.fit["http"]})
    path = tmp_path / "cost_model.json"
    path.write_text(type(reference)(http_only, reference.encodings, {}, "a run").to_json())
    steps.check_judge(path, ["http"])
    with pytest.raises(ChunkatlasError, match=r"has no fit for backend\(s\) s3 .* it has: http"):
        steps.check_judge(path, ["http", "s3"])


def test_the_reads_judged_name_their_stores_layout(tmp_path):
    from chunkatlas.steps._judge import measured_reads

    table = tmp_path / "remote.tsv"
    pd.DataFrame({"pattern": ["all_x"], "backend": ["http"], "seconds": [1.0]}).to_csv(
        table, sep="\t", index=False
    )
    (tmp_path / "none.tsv").write_text("store\n")
    reads = measured_reads([("genes-20-shard-4-zstd", table)], tmp_path / "none.tsv")
    assert reads[["orientation", "chunk", "shard", "codec"]].iloc[0].tolist() == [
        "genes",
        20,
        4,
        "zstd",
    ]
    with pytest.raises(ChunkatlasError, match="'lung-x' is not named ORIENTATION-CHUNK"):
        measured_reads([("lung-x", table)], tmp_path / "none.tsv")
