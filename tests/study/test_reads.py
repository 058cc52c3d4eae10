"""What each pattern reads: a user's cells and genes, drawn at random but the same for every
store of one tissue shape, and the ranges of X's arrays each read covers, recorded beside its
traffic and checked against the store's own indptr."""

from __future__ import annotations

import io

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.rewrite import consolidate_store, rechunk_store
from chunkatlas.study import (
    PANEL,
    PATTERNS,
    cell_block_size,
    parse_ranges,
    pattern_selection,
)
from chunkatlas.study._measure import measure_store
from chunkatlas.study._reads import along_the_grain

#: cell-major stores chunk 100 cells, gene-major ones 20 genes
LAYOUTS = (("cells", 100), ("genes", 20))


@pytest.fixture(scope="module")
def measured(fetched, tmp_path_factory):
    """The lung tissue cell-major and gene-major, each measured over HTTP on loopback with two
    cold reads per pattern: orientation -> (store, table by pattern)."""
    where = tmp_path_factory.mktemp("reads")
    tables = {}
    for orientation, size in LAYOUTS:
        store = where / orientation / "store.zarr"
        rechunk_store(fetched, store, size, orientation=orientation)
        consolidate_store(store, store.with_name("store.manifest.json"))
        tables[orientation] = (store, measure_store(store, repeats=2).set_index("pattern"))
    return tables


@pytest.mark.parametrize(
    "shape", [(0, 0), (1, 1), (5, 3), (700, 765), (2400, 400), (10**6, 3 * 10**4)]
)
def test_a_selection_is_a_users_read_the_same_on_every_call(shape):
    n_obs, n_vars = shape
    for pattern in PATTERNS:
        selection = pattern_selection(pattern, n_obs, n_vars)
        assert selection == pattern_selection(pattern, n_obs, n_vars)
    block = pattern_selection("cell_block", n_obs, n_vars)
    assert len(block.cells) == min(cell_block_size(n_obs), n_obs)
    assert 0 <= block.cells.start and block.cells.stop <= n_obs and block.genes == range(n_vars)
    for pattern, count in (("one_gene", min(1, n_vars)), ("fifty_genes", min(PANEL, n_vars))):
        genes = pattern_selection(pattern, n_obs, n_vars).genes
        assert len(set(genes)) == len(genes) == count and list(genes) == sorted(genes)
        assert all(0 <= g < n_vars for g in genes)
        assert pattern_selection(pattern, n_obs, n_vars).cells == range(n_obs)
    whole = pattern_selection("all_x", n_obs, n_vars)
    assert (whole.cells, whole.genes) == (range(n_obs), range(n_vars))
    assert len(pattern_selection("open", n_obs, n_vars).cells) == 0
    with pytest.raises(ChunkatlasError, match="unknown access pattern 'some_genes'"):
        pattern_selection("some_genes", n_obs, n_vars)


def test_genes_are_drawn_over_the_whole_tissue_not_spread_evenly():
    # uniform draws: the panel's gaps vary, where an even spread's would all be alike
    genes = pattern_selection("fifty_genes", 2400, 30_000).genes
    gaps = np.diff(genes)
    assert gaps.max() > 2 * gaps.min()
    assert genes[0] < 30_000 / 10 and genes[-1] > 30_000 * 9 / 10


def test_every_layout_of_a_tissue_reads_the_same_cells_and_genes(measured):
    (cells_store, by_cells), (genes_store, by_genes) = measured["cells"], measured["genes"]
    shape = zarr.open_group(cells_store, mode="r")["X"].attrs["shape"]
    assert shape == zarr.open_group(genes_store, mode="r")["X"].attrs["shape"]
    columns = ["cells", "genes"]
    pd.testing.assert_frame_equal(by_cells[columns], by_genes[columns])
    # the block cell-major and the genes gene-major, each where the selection says
    block = pattern_selection("cell_block", *shape).cells
    assert parse_ranges(by_cells.loc["cell_block", "ranges"])[0] == [(block.start, block.stop + 1)]
    for pattern in ("one_gene", "fifty_genes"):
        genes = pattern_selection(pattern, *shape).genes
        pointers, _ = parse_ranges(by_genes.loc[pattern, "ranges"])
        assert pointers == [(g, g + 2) for g in genes]
    # all of X is the same stored values whichever way it lies
    assert by_cells.loc["all_x", "values"] == by_genes.loc["all_x", "values"]


def test_a_block_of_cells_falls_across_a_chunk_boundary(measured):
    store, table = measured["cells"]
    x = zarr.open_group(store, mode="r")["X"]
    cells_per_chunk = dict(LAYOUTS)["cells"]
    assert cells_per_chunk < x.attrs["shape"][0]
    block = pattern_selection("cell_block", *x.attrs["shape"]).cells
    assert block.start % cells_per_chunk != 0  # not where a chunk starts
    assert block.start // cells_per_chunk != (block.stop - 1) // cells_per_chunk  # across two
    _, [(first, _)] = parse_ranges(table.loc["cell_block", "ranges"])
    assert first % x["data"].chunks[0] != 0  # nor does its first value start a chunk of data


@pytest.mark.parametrize("orientation", [orientation for orientation, _ in LAYOUTS])
def test_recorded_ranges_are_those_of_the_stores_indptr(measured, fetched, orientation):
    store, table = measured[orientation]
    x = zarr.open_group(store, mode="r")["X"]
    encoding, indptr = x.attrs["encoding-type"], x["indptr"][:]
    assert encoding == {"cells": "csr_matrix", "genes": "csc_matrix"}[orientation]
    matrix = ad.read_zarr(fetched).X  # the tissue itself, to count each read's values
    for pattern in PATTERNS:
        row = table.loc[pattern]
        selection = pattern_selection(pattern, *x.attrs["shape"])
        assert row["repeats"] == 2  # two cold reads, the same requests and bytes
        if not along_the_grain(pattern, encoding):
            assert row["ranges"] == ""
            assert row["values"] == (0 if pattern == "open" else indptr[-1])
            continue
        pointers, values = parse_ranges(row["ranges"])
        assert row["ranges"] == row["ranges"].replace(" ", "")  # compact
        assert values == [(int(indptr[low]), int(indptr[high - 1])) for low, high in pointers]
        assert row["values"] == sum(high - low for low, high in values)
        rows, columns = selection.index(*x.attrs["shape"])
        assert row["values"] == matrix[rows][:, columns].nnz  # exactly the read's values
        if encoding == "csr_matrix":
            assert pointers == [(selection.cells.start, selection.cells.stop + 1)]
        else:
            assert pointers == [(g, g + 2) for g in selection.genes]


def test_ranges_survive_a_tsv(measured):
    """The remote job writes its table as TSV: a read of whole arrays comes back an empty
    cell, a range as the same JSON."""
    _, table = measured["cells"]
    text = io.StringIO()
    table.reset_index().to_csv(text, sep="\t", index=False)
    back = pd.read_csv(io.StringIO(text.getvalue()), sep="\t").set_index("pattern")
    for pattern in PATTERNS:
        assert parse_ranges(back.loc[pattern, "ranges"]) == parse_ranges(
            table.loc[pattern, "ranges"]
        )
    assert parse_ranges(table.loc["all_x", "ranges"]) is None
    assert parse_ranges(table.loc["cell_block", "ranges"]) is not None
