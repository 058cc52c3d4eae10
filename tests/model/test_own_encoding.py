"""A source's own bytes per value: a sample of its cells, stored as the rewriter stores them,
predicts what the rewriter stores for the whole atlas; ``chunkatlas advise`` on a source says so."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from chunkatlas.errors import ChunkatlasError
from chunkatlas.model import (
    EncodingSample,
    load_cost_model,
    measure_encodings,
    own_encodings,
    source_encodings,
)
from chunkatlas.rewrite import rechunk_store
from chunkatlas.steps import advise
from chunkatlas.store import build_manifest

N_OBS, N_VARS = 3_000, 1_000
#: (orientation, chunk, codec) of the stores the sample's bytes are held against: chunks of
#: the whole atlas or half of it, large as the sample's (several of Blosc's blocks each).
LAYOUTS = [
    (orientation, units // halves, codec)
    for orientation, units in (("cells", N_OBS), ("genes", N_VARS))
    for halves in (1, 2)
    for codec in ("packed", "zstd")
]
CODECS = sorted({codec for *_, codec in LAYOUTS})


def counts(n_obs: int = N_OBS, n_vars: int = N_VARS, *, seed: int = 0) -> sp.csr_matrix:
    """Counts as an atlas holds them: each gene expressed in its own share of cells, deeper
    cells expressing more genes, small counts most often."""
    rng = np.random.default_rng(seed)
    gene_share = rng.gamma(0.6, 0.2, n_vars).clip(0, 1)
    depth = rng.lognormal(0.0, 0.3, n_obs)[:, None]
    expressed = rng.random((n_obs, n_vars)) < (gene_share * depth).clip(0, 1)
    rows, cols = np.nonzero(expressed)
    values = 1 + rng.negative_binomial(1, 0.3, rows.size)
    return sp.csr_matrix((values.astype(np.float32), (rows, cols)), shape=(n_obs, n_vars))


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """The same atlas as a zarr store, an h5ad and a gene-major (CSC) h5ad."""
    where = tmp_path_factory.mktemp("own")
    x = counts()
    paths = {"zarr": where / "atlas.zarr", "h5ad": where / "atlas.h5ad"}
    ad.AnnData(X=x).write_zarr(paths["zarr"])
    ad.AnnData(X=x).write_h5ad(paths["h5ad"])
    paths["csc.h5ad"] = where / "csc.h5ad"
    ad.AnnData(X=sp.csc_matrix(x)).write_h5ad(paths["csc.h5ad"])
    return paths


def x_bytes(store: Path) -> dict[str, int]:
    """Stored bytes of each of X's arrays (``data``, ``indices``, ``indptr``; ``X`` if dense),
    from the store's manifest."""
    arrays = build_manifest(store, checksums=False)["arrays"]
    return {a["path"]: a["stored_bytes"] for a in arrays if a["path"].split("/")[0] == "X"}


@pytest.fixture(scope="module")
def stored(sources, tmp_path_factory) -> dict[tuple[str, int, str], float]:
    """The whole atlas re-written in each layout: stored bytes of data and indices per value."""
    where = tmp_path_factory.mktemp("rewritten")
    nnz = counts().nnz
    found = {}
    for orientation, chunk, codec in LAYOUTS:
        dest = where / f"{orientation}-{chunk}-{codec}.zarr"
        rechunk_store(sources["zarr"], dest, chunk, codec=codec, orientation=orientation)
        arrays = x_bytes(dest)
        found[(orientation, chunk, codec)] = (arrays["X/data"] + arrays["X/indices"]) / nnz
    return found


@pytest.mark.parametrize("kind", ["zarr", "h5ad"])
@pytest.mark.parametrize("share", [1, 2])
def test_a_sample_predicts_the_bytes_per_value_of_each_layout(sources, stored, kind, share):
    """Half of the cells (share 2), from a random first cell, or all of them (share 1)."""
    nnz = counts().nnz
    sample = measure_encodings(str(sources[kind]), CODECS, sample_values=nnz // share)
    assert 0 < sample.values <= nnz // share and sample.cells <= N_OBS
    assert sample.first + sample.cells <= N_OBS and not sample.dense
    if share > 1:
        assert sample.values > nnz // share - 2 * N_VARS  # whole cells, as many as fit
    for (orientation, chunk, codec), actual in stored.items():
        measured = sample.stored[(orientation, codec)].bytes_per_value
        assert measured == pytest.approx(actual, rel=0.10), (orientation, chunk, codec)


def test_cell_major_pointers_cost_what_the_stores_indptr_does(sources, tmp_path):
    x = counts()
    sample = measure_encodings(str(sources["zarr"]), ["packed", "zstd"], sample_values=x.nnz)
    for codec in ("packed", "zstd"):
        dest = tmp_path / f"{codec}.zarr"
        rechunk_store(sources["zarr"], dest, N_OBS, codec=codec)
        actual = x_bytes(dest)["X/indptr"] / (N_OBS + 1)
        assert sample.stored[("cells", codec)].bytes_per_pointer == pytest.approx(actual, rel=0.1)


def test_a_gene_major_source_gives_the_same_sample_as_a_cell_major_one(sources):
    nnz = counts().nnz
    by_cells = measure_encodings(str(sources["zarr"]), ["packed"], sample_values=nnz // 4)
    by_genes = measure_encodings(str(sources["csc.h5ad"]), ["packed"], sample_values=nnz // 4)
    assert (by_genes.first, by_genes.cells, by_genes.values) == (
        by_cells.first,
        by_cells.cells,
        by_cells.values,
    )
    assert by_genes.stored == by_cells.stored


def test_the_seed_chooses_the_first_cell(sources):
    nnz = counts().nnz
    firsts = {
        measure_encodings(str(sources["zarr"]), ["zstd"], sample_values=nnz // 10, seed=s).first
        for s in range(4)
    }
    assert len(firsts) > 1


def test_a_dense_atlas_stores_every_value_and_no_pointers(tmp_path):
    x = counts(600, 200).toarray()
    source = tmp_path / "dense.zarr"
    ad.AnnData(X=x).write_zarr(source)
    sample = measure_encodings(str(source), ["packed", "zstd"], sample_values=x.size)
    assert sample.dense and sample.values == x.size
    for orientation, chunk in (("cells", 600), ("genes", 200)):
        for codec in ("packed", "zstd"):
            dest = tmp_path / f"{orientation}-{codec}.zarr"
            rechunk_store(source, dest, chunk, codec=codec, orientation=orientation)
            actual = x_bytes(dest)["X"] / x.size
            found = sample.stored[(orientation, codec)]
            assert found.bytes_per_value == pytest.approx(actual, rel=0.10)
            assert found.bytes_per_pointer == 0


def test_own_encodings_keep_the_models_decode_costs(sources):
    model = load_cost_model().encodings
    sample = measure_encodings(str(sources["zarr"]), sorted({c for _, c in model}))
    found = own_encodings(str(sources["zarr"]), model)
    assert set(found) == set(model)
    for key, encoding in found.items():
        assert encoding.bytes_per_value == sample.stored[key].bytes_per_value
        assert encoding.bytes_per_pointer == sample.stored[key].bytes_per_pointer
        assert encoding.decode_seconds_per_byte == model[key].decode_seconds_per_byte
    assert isinstance(sample, EncodingSample)


def test_without_an_anndata_source_the_bytes_are_the_models():
    model = load_cost_model().encodings
    encodings, line = source_encodings(None, model)
    assert encodings is None
    assert line.startswith("bytes per value from the cost model: ")
    for (orientation, codec), encoding in model.items():
        assert f"{encoding.bytes_per_value:.2f} B {orientation[:-1]}-major" in line
        assert codec in line


@pytest.mark.parametrize("kind", ["zarr", "h5ad"])
def test_advise_on_a_source_names_its_own_encoding(sources, kind, tmp_path):
    source = str(sources[kind])
    model = load_cost_model()
    sample = measure_encodings(source, sorted({c for _, c in model.encodings}))
    text = advise(source, backend="http", patterns=["one_gene"], directory=tmp_path)
    assert sample.describe(model.encodings) in text.splitlines()
    assert f"bytes per value from a sample of {sample.values:,} values" in text
    assert "from the cost model" not in text
    scaled = advise(
        source, backend="http", patterns=["one_gene"], cells=10 * N_OBS, directory=tmp_path
    )
    assert sample.describe(model.encodings) in scaled.splitlines()  # deeper, not denser
    alone = advise(None, backend="http", patterns=["one_gene"], cells=N_OBS, directory=tmp_path)
    assert "bytes per value from the cost model: " in alone


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda s: measure_encodings(s, ["gzip"]), "'gzip'"),
        (lambda s: measure_encodings(s, []), "'none'"),
        (lambda s: measure_encodings(s, ["packed"], sample_values=0), "sample_values 0"),
        (lambda s: measure_encodings(s, ["packed"], sample_values=2.5), "sample_values 2.5"),
        (lambda s: measure_encodings(s + ".txt", ["packed"]), ".txt is not an AnnData"),
        (lambda s: measure_encodings(s + "-missing.zarr", ["packed"]), "store not found"),
    ],
)
def test_bad_values_fail_in_one_line_naming_them(sources, call, named):
    with pytest.raises(ChunkatlasError) as err:
        call(str(sources["zarr"]))
    message = str(err.value)
    assert named in message and "\n" not in message


def test_an_atlas_without_values_has_no_bytes_per_value(tmp_path):
    source = tmp_path / "empty.zarr"
    ad.AnnData(X=sp.csr_matrix((5, 4), dtype=np.float32)).write_zarr(source)
    with pytest.raises(ChunkatlasError, match="stores no values"):
        measure_encodings(str(source), ["packed"])
