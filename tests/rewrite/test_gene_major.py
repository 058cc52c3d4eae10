"""Gene-major stores: CSC written out of core from a cell-major source, read by plain anndata
one gene at a time, guarded and counted like every store."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.rewrite import ORIENTATIONS, consolidate_store, rechunk_store
from chunkatlas.rewrite import _gene_major as gene_major
from chunkatlas.store import verify_store

from ..support.stores import assert_totals_of_x


@pytest.fixture(scope="module")
def cells(fetched):
    return ad.read_zarr(fetched)


@pytest.mark.parametrize(("shard", "codec"), [(1, "packed"), (4, "packed"), (1, "zstd")])
def test_gene_major_store_holds_the_same_matrix_as_csc(fetched, cells, tmp_path, shard, codec):
    store = tmp_path / "genes.zarr"
    rechunk_store(fetched, store, 25, shard=shard, codec=codec, orientation="genes")
    group = zarr.open_group(store, mode="r")
    x = group["X"]
    assert dict(x.attrs)["encoding-type"] == "csc_matrix"
    per_gene = x["data"].shape[0] / cells.n_vars
    assert x["data"].chunks == (int(np.ceil(per_gene * 25)),)  # about 25 genes per chunk
    assert (x["data"].shards is not None) == (shard > 1)
    back = ad.read_zarr(store)
    assert back.X.format == "csc"
    assert (back.X != cells.X).nnz == 0 and back.X.dtype == cells.X.dtype
    np.testing.assert_array_equal(back.X.indices, sp.csc_matrix(cells.X).indices)
    assert_totals_of_x(back)
    assert back.obs.index.equals(cells.obs.index) and back.var.index.equals(cells.var.index)
    manifest = consolidate_store(store, tmp_path / "genes.manifest.json")
    assert manifest["x_sparse"] and manifest["x_nnz"] == cells.X.nnz
    verify_store(store, tmp_path / "genes.manifest.json")  # every object guarded by its CRC


def test_plain_anndata_reads_a_few_genes_as_their_ranges(fetched, cells, tmp_path):
    rechunk_store(fetched, tmp_path / "genes.zarr", 10, orientation="genes")
    genes = [3, 200, 399]
    matrix = ad.io.sparse_dataset(zarr.open_group(tmp_path / "genes.zarr", mode="r")["X"])
    np.testing.assert_array_equal(matrix[:, genes].toarray(), cells.X[:, genes].toarray())


def test_the_writer_makes_two_passes_and_holds_one_gene_group_at_a_time(tmp_path, monkeypatch):
    """Memory is one block of cells or one group of genes: with groups of at most 500 values
    the writer spills and orders many groups, and still writes the whole matrix."""
    rng = np.random.default_rng(4)
    x = sp.random(3000, 120, density=0.05, format="csr", dtype=np.float32, rng=rng)
    x.data = np.ceil(x.data * 9)
    blocks = [x[start : start + 400] for start in range(0, 3000, 400)]
    passes = []

    def source():
        passes.append(1)
        return iter(blocks)

    seen = []
    original = gene_major.Appender.add

    def add(self, values):
        seen.append(len(values))
        original(self, values)

    monkeypatch.setattr(gene_major.Appender, "add", add)
    root = zarr.open_group(tmp_path / "out.zarr", mode="w")

    def settings(chunks, shape, *, dtype, role, cast=None):
        return {"chunks": (97,), "shards": (97 * 3,)} if role != "index" else {"chunks": (97,)}

    gene_major.write_csc(
        root, "X", x.shape, np.dtype("float32"), source, (97,), settings,
        cast_values=True, group_values=500, scratch=str(tmp_path),
    )  # fmt: skip
    assert len(passes) == 2  # counts, then the spill
    assert max(seen) <= 500 + max(np.bincount(x.indices))  # a group, or one larger gene
    assert len(seen) >= 2 * x.nnz // 500  # data and indices, group by group
    group = root["X"]
    back = sp.csc_matrix((group["data"][:], group["indices"][:], group["indptr"][:]), shape=x.shape)
    assert (back != x).nnz == 0
    assert not list(tmp_path.glob("chunkatlas-genes-*"))  # the spill is gone


def test_gene_groups_split_by_values_and_keep_a_large_gene_whole():
    counts = np.array([3, 3, 3, 10, 1, 1])
    assert gene_major.gene_groups(counts, 6) == [(0, 2), (2, 3), (3, 4), (4, 6)]
    assert gene_major.gene_groups(np.array([], dtype=int), 6) == []


@pytest.mark.parametrize("bad", ["diagonal", "obs", ""])
def test_an_orientation_that_does_not_exist_is_refused_before_any_output(fetched, tmp_path, bad):
    with pytest.raises(ChunkatlasError) as raised:
        rechunk_store(fetched, tmp_path / "out.zarr", 10, orientation=bad)
    message = str(raised.value)
    assert f"orientation {bad!r} is not one of cells, genes" in message and "\n" not in message
    assert not (tmp_path / "out.zarr").exists()
    assert ORIENTATIONS == ("cells", "genes")


@pytest.mark.parametrize(
    ("n_obs", "dtype", "cast"),
    [(3_000, "float32", "u1"), (3_000, "float32", None), (5_000_000_000, "float64", "u2")],
)
def test_a_spilled_part_comes_back_exactly(n_obs, dtype, cast):
    rng = np.random.default_rng(7)
    counts = np.array([0, 4, 1, 0, 7])
    genes = np.repeat(np.arange(10, 15), counts)
    # cells ascending within each gene, falling at each gene's start; the last near n_obs
    cells = np.concatenate([np.sort(rng.choice(n_obs, c, replace=False)) for c in counts])
    cells[-1] = n_obs - 1
    values = (rng.integers(0, 200, len(cells)) + (0 if cast else 0.5)).astype(dtype)
    types = gene_major.spill_types(n_obs, np.dtype(dtype), cast and np.dtype(cast))
    packed = gene_major.pack_part(counts, cells, values, types)
    twice = list(gene_major.unpack_parts(packed + packed, types, np.dtype(dtype)))
    assert len(twice) == 2
    for back_counts, back_cells, back_values in twice:
        np.testing.assert_array_equal(back_counts, counts)
        np.testing.assert_array_equal(back_cells, cells)
        np.testing.assert_array_equal(back_values, values)
        assert back_values.dtype == np.dtype(dtype)
    # two blocks' parts in gene order: each gene's cells of the first block, then the second's
    ordered, ordered_cells = gene_major.gene_ordered(twice, 2 * counts, np.dtype(dtype))
    expected = np.argsort(np.concatenate([genes, genes]), kind="stable")
    np.testing.assert_array_equal(ordered, np.concatenate([values, values])[expected])
    np.testing.assert_array_equal(ordered_cells, np.concatenate([cells, cells])[expected])


def test_the_spill_of_counts_takes_under_two_bytes_a_value(tmp_path):
    rng = np.random.default_rng(3)
    x = sp.random(4_000, 2_000, density=0.05, format="csr", dtype=np.float32, rng=rng)
    x.data = np.ceil(x.data * 20)
    groups = gene_major.gene_groups(np.bincount(x.indices, minlength=2_000), 50_000)
    types = gene_major.spill_types(x.shape[0], x.dtype, np.dtype("u1"))
    blocks = [x[start : start + 1_000] for start in range(0, 4_000, 1_000)]
    gene_major.spill_by_group(blocks, groups, tmp_path, types)
    spilled = sum(path.stat().st_size for path in tmp_path.glob("*.bin"))
    assert spilled < 2 * x.nnz  # plain records took 10 bytes a value
