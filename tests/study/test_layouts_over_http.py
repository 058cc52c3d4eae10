"""What a layout costs a plain anndata reader over HTTP: one gene of a gene-major store is a
handful of requests, the same gene of a cell-major store is all of X; and the study's planned
reads move each stored byte of X once on every geometry."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pytest
import zarr
from zarr.storage import FsspecStore

from chunkatlas.rewrite import consolidate_store, rechunk_store
from chunkatlas.study._http import aiohttp_serving
from chunkatlas.study._measure import measure_store

GENE = 200


@pytest.fixture(scope="module")
def layouts(fetched, tmp_path_factory):
    """The lung tissue cell-major (200 cells per chunk) and gene-major (20 genes per chunk),
    each with its manifest."""
    where = tmp_path_factory.mktemp("layouts")
    for name, size, orientation in (("cells", 200, "cells"), ("genes", 20, "genes")):
        rechunk_store(fetched, where / f"{name}.zarr", size, orientation=orientation)
        consolidate_store(where / f"{name}.zarr", where / f"{name}.manifest.json")
    return where


def x_objects(manifest: dict) -> tuple[int, int]:
    """Objects and stored bytes of X's arrays."""
    arrays = [a for a in manifest["arrays"] if a["path"].startswith("X/")]
    return sum(a["stored_chunks"] for a in arrays), sum(a["stored_bytes"] for a in arrays)


def read_one_gene(url: str) -> np.ndarray:
    """What a user of plain anndata and zarr does, with no chunkatlas import."""
    group = zarr.open_consolidated(FsspecStore.from_url(url, read_only=True), mode="r")
    # an integer array or a slice: anndata reads a Python list of genes as all of X
    return ad.io.sparse_dataset(group["X"])[:, np.array([GENE])].toarray()


def logged(log_path, since: int) -> list[dict]:
    return [json.loads(line) for line in log_path.read_text().splitlines()[since:] if line]


def test_one_gene_is_a_few_requests_gene_major_and_all_of_x_cell_major(layouts, fetched, tmp_path):
    expected = ad.read_zarr(fetched).X[:, [GENE]].toarray()
    log_path = tmp_path / "requests.jsonl"
    costs = {}
    with aiohttp_serving(layouts, log_path) as url:
        for name in ("cells", "genes"):
            read_one_gene(f"{url}/{name}.zarr")  # a warm-up: fsspec's session, not counted
            before = len(log_path.read_text().splitlines())
            np.testing.assert_array_equal(read_one_gene(f"{url}/{name}.zarr"), expected)
            entries = logged(log_path, before)
            x_reads = [e for e in entries if "/X/" in e["path"]]
            costs[name] = (len(x_reads), sum(e["bytes"] for e in x_reads))
    manifest = json.loads((layouts / "cells.manifest.json").read_text())
    objects, stored = x_objects(manifest)
    assert costs["cells"][0] >= objects and costs["cells"][1] >= stored  # all of X
    assert costs["genes"][0] <= 6  # indptr, then the gene's range of indices and data
    assert costs["genes"][1] < stored / 10


@pytest.mark.parametrize(
    ("size", "shard", "orientation"),
    [(200, 1, "cells"), (200, 4, "cells"), (20, 1, "genes"), (20, 4, "genes")],
)
def test_reading_all_of_x_moves_its_stored_bytes_once(fetched, tmp_path, size, shard, orientation):
    store = tmp_path / "store.zarr"
    rechunk_store(fetched, store, size, shard=shard, orientation=orientation)
    manifest = consolidate_store(store, tmp_path / "store.manifest.json")
    table = measure_store(store, repeats=1).set_index("pattern")
    objects, stored = x_objects(manifest)
    assert table.loc["all_x", "bytes"] <= 1.05 * stored
    # an object is one request, or a shard's index and its chunks in one
    assert table.loc["all_x", "requests"] <= 2 * objects
    traffic = table[["requests", "bytes"]].apply(tuple, axis=1)
    if orientation == "cells":  # across the grain: all of X for one gene
        assert traffic["one_gene"] == traffic["all_x"]
        assert table.loc["cell_block", "bytes"] < stored / 2
    else:
        assert traffic["cell_block"] == traffic["all_x"]
        assert table.loc["one_gene", "bytes"] < stored / 10
