"""``chunkatlas advise``: the traffic a layout makes, predicted from its size alone, checked
against the requests the study measures; and the advice built on it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile

import pandas as pd
import pytest

from chunkatlas.errors import ChunkatlasError
from chunkatlas.model import (
    Atlas,
    CostModel,
    Layout,
    advise_mix,
    best_per_pattern,
    load_cost_model,
    predictions,
)
from chunkatlas.model._fit import BackendFit, CostFit
from chunkatlas.model._traffic import calibrate, encodings, predict_traffic, recorded_ranges
from chunkatlas.rewrite import consolidate_store, rechunk_store
from chunkatlas.study import measure_backends

GEOMETRIES = [("cells", 200, 1), ("cells", 200, 4), ("genes", 20, 1), ("genes", 20, 4)]
KEYS = ["tissue", "orientation", "chunk", "shard", "codec"]


@pytest.fixture(scope="module")
def study(fetched, tmp_path_factory):
    """The lung tissue in four layouts, each measured over HTTP on loopback: the remote rows
    and the stores' sizes, as a study run's remote.tsv and summary.tsv hold them."""
    where = tmp_path_factory.mktemp("study")
    remote, sizes = [], []
    for orientation, chunk, shard in GEOMETRIES:
        store = where / f"{orientation}-{chunk}-{shard}" / "store.zarr"
        rechunk_store(fetched, store, chunk, shard=shard, orientation=orientation)
        manifest = consolidate_store(store, store.with_name("store.manifest.json"))
        geometry = dict(tissue="lung", orientation=orientation, chunk=chunk, shard=shard)
        geometry["codec"] = "packed"
        remote.append(measure_backends(store, repeats=1).assign(**geometry))
        sizes.append(
            {**geometry, **{k: manifest[k] for k in ("n_obs", "n_vars")}, "nnz": manifest["x_nnz"]}
        )
    return pd.concat(remote, ignore_index=True), pd.DataFrame(sizes)


def fit_of(backend: str = "s3") -> CostFit:
    """Coefficients of an object store: 30 ms per request, four in flight, 20 MB/s."""
    return CostFit({backend: BackendFit(backend, 0.0075, 5e-8, None, 1.0, 0.0, 10, 30.0, 160.0)})


def test_the_layout_predicts_the_requests_the_study_measures(study):
    remote, sizes = study
    found = encodings(remote, sizes)
    rows = remote.merge(sizes, on=KEYS)
    checked = 0
    for row in rows[rows["pattern"] != "open"].itertuples():
        atlas = Atlas(row.n_obs, row.n_vars, row.nnz)
        layout = Layout(row.orientation, row.chunk, row.shard, row.codec)
        encoding = found[(row.orientation, row.codec)]
        ranges = recorded_ranges(row.ranges)  # the cells and genes the study read
        traffic = predict_traffic(atlas, layout, row.pattern, encoding, ranges=ranges)
        assert traffic.requests == row.requests, row
        assert traffic.bytes == pytest.approx(row.bytes, rel=0.1), row
        checked += 1
    assert checked == 4 * 4 * 1  # geometries x patterns x backends
    # what the reader adds beyond the layout's ranges: nothing
    assert set(calibrate(remote, sizes, found).values()) == {0}


@pytest.fixture(scope="module")
def model(study):
    remote, sizes = study
    found = encodings(remote, sizes)
    return CostModel(fit_of(), found, calibrate(remote, sizes, found), "the test's study")


def test_one_gene_of_a_cell_major_atlas_is_best_read_from_a_gene_major_copy(model):
    atlas = Atlas(1_000_000, 20_000, 1_500_000_000)
    table = predictions(atlas, model, "s3", ["one_gene", "cell_block", "all_x"])
    best = best_per_pattern(table).set_index("pattern")
    assert best.loc["one_gene", "orientation"] == "genes"
    assert best.loc["one_gene", "requests"] <= 6
    assert best.loc["cell_block", "orientation"] == "cells"
    # reading all of X moves its stored bytes whatever the layout: what decides is how many
    # responses stream at once, and among near-ties the fewest objects
    whole = table[table["pattern"] == "all_x"]
    assert best.loc["all_x", "seconds"] <= whole["seconds"].min() * 1.1
    near = whole[whole["seconds"] <= whole["seconds"].min() * 1.1]
    assert best.loc["all_x", "objects"] == near["objects"].min()
    mix = advise_mix(table)
    assert {mix.pair[0].orientation, mix.pair[1].orientation} == {"cells", "genes"}
    assert mix.pair_seconds <= mix.single_seconds
    other = "genes" if mix.single.orientation == "cells" else "cells"
    copy = model.encodings[(other, mix.single.codec)].x_bytes(atlas, other)
    assert mix.second_copy_bytes == pytest.approx(copy)


def test_objects_grow_with_cells_and_shards_cut_them(model):
    small, large = Atlas(100_000, 20_000, 150_000_000), Atlas(10_000_000, 20_000, 15_000_000_000)
    layout, sharded = Layout("cells", 10_000, 1, "packed"), Layout("cells", 10_000, 64, "packed")
    encoding = model.encodings[("cells", "packed")]
    objects = {
        (atlas.n_obs, lay.shard): predict_traffic(atlas, lay, "all_x", encoding).objects
        for atlas in (small, large)
        for lay in (layout, sharded)
    }
    assert objects[(10_000_000, 1)] == pytest.approx(100 * objects[(100_000, 1)], rel=0.05)
    assert objects[(10_000_000, 64)] <= math.ceil(objects[(10_000_000, 1)] / 64) + 3


def test_the_cost_model_file_round_trips(model, tmp_path):
    path = tmp_path / "cost_model.json"
    path.write_text(model.to_json())
    again = load_cost_model(path)
    atlas = Atlas(500_000, 20_000, 700_000_000)
    pd.testing.assert_frame_equal(
        predictions(atlas, again, "s3", ["one_gene"]), predictions(atlas, model, "s3", ["one_gene"])
    )
    assert json.loads(path.read_text())["origin"] == "the test's study"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "is not a chunkatlas cost model"),
        ('{"note": "no cost model: one store"}', "holds no cost model: no cost model: one store"),
    ],
)
def test_a_file_that_is_no_cost_model_is_refused_in_one_line(tmp_path, text, message):
    (tmp_path / "model.json").write_text(text)
    with pytest.raises(ChunkatlasError, match=message):
        load_cost_model(tmp_path / "model.json")


def run_advise(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """advise in an empty folder (``cwd``; default: a new one): a run's cost model in the
    current folder would be taken over the reference model."""
    command = [sys.executable, "-m", "chunkatlas.cli", "advise", *args]
    with tempfile.TemporaryDirectory() as empty:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=300, cwd=cwd or empty
        )


def test_advise_on_a_cell_major_store_recommends_a_gene_major_layout_for_one_gene(consolidated):
    store, _ = consolidated
    done = run_advise(str(store), "--pattern", "one_gene", "--cells", "2000000")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "2,000,000 cells" in out and "the reference model shipped with chunkatlas" in out
    assert "one_gene: gene-major" in out
    assert f"chunkatlas rechunk {store} " in out and "--orientation genes" in out


def test_advise_answers_for_a_size_alone_with_a_mix_and_a_second_copy():
    done = run_advise("--cells", "100000000", "--backend", "http")
    assert done.returncode == 0, done.stderr
    assert "100,000,000 cells x 20,000 genes" in done.stdout
    for pattern in ("one_gene", "fifty_genes", "cell_block", "all_x"):
        assert f"\n{pattern}: " in done.stdout
    assert "two copies:" in done.stdout and "the second copy stores" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "advise needs a SOURCE"),
        (("--cells", "1000", "--model", "missing.json"), "cost model not found: missing.json"),
        (("nowhere.zarr",), "store not found: nowhere.zarr"),
    ],
)
def test_bad_advise_input_is_one_line(args, message, tmp_path):
    done = run_advise(*args)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_advise_on_a_soma_tissue_counts_its_cells_and_says_to_fetch_it_first(atlas, fetched):
    import anndata as ad

    done = run_advise(atlas, "--tissue", "lung", "--pattern", "cell_block")
    assert done.returncode == 0, done.stderr
    n_obs = ad.read_zarr(fetched).n_obs
    assert f"{n_obs:,} cells x 400 genes" in done.stdout
    assert f"(first: chunkatlas fetch {atlas} lung lung.zarr)" in done.stdout
    # a tissue this small is read whole in a few requests in either orientation
    assert "chunkatlas rechunk lung.zarr lung-" in done.stdout
