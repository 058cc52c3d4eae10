"""Measuring access patterns over real HTTP servers on loopback: request counts that follow the
chunk layout, seconds that are the median of cold reads of identical traffic."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.ingest._fetch import fetch_anndata
from chunkatlas.model import columns_of, open_requests
from chunkatlas.rewrite import _geometry, consolidate_store, rechunk_store
from chunkatlas.study import (
    PATTERNS,
    cell_block_size,
    measure_backends,
    measure_stores_backends,
    pattern_selection,
)
from chunkatlas.study._http import aiohttp_serving
from chunkatlas.study._measure import WARM_UP, measure_store, run_patterns
from chunkatlas.study._network import MARK_PREFIX, Network
from chunkatlas.study._request_log import RequestLog
from chunkatlas.study._serving import served

from ..support.faulty_server import Faults, faulty_serving
from ..support.remote import FAST
from ..support.stores import chunk_key


@pytest.fixture(scope="module")
def pbmc_fetched(tmp_path_factory):
    dest = tmp_path_factory.mktemp("pbmc") / "fetched.zarr"
    fetch_anndata(
        "scanpy:pbmc68k_reduced", "pbmc", dest, use_raw=True, dense=True, scaled_layer=True
    )
    return dest


@pytest.fixture(
    scope="module", params=[(5, 3), (25, 3), (5, 2)], ids=["5-zarr-v3", "25-zarr-v3", "5-zarr-v2"]
)
def gene_chunked(request, pbmc_fetched, tmp_path_factory):
    """The tutorial's layout: dense X chunked (n_obs, C); returns (store, manifest dict, C)."""
    size, zarr_format = request.param
    where = tmp_path_factory.mktemp(f"chunks-{size}-v{zarr_format}")
    rechunk_store(
        pbmc_fetched, where / "store.zarr", size, orientation="genes", zarr_format=zarr_format
    )
    manifest = consolidate_store(where / "store.zarr", where / "store.manifest.json")
    return where / "store.zarr", manifest, size


def x_entry(manifest):
    return next(a for a in manifest["arrays"] if a["path"] == "X")


def test_pbmc_store_is_the_tutorial_layout(gene_chunked, pbmc_fetched):
    store, manifest, size = gene_chunked
    group = zarr.open_group(store, mode="r")
    n_obs, n_vars = group["X"].shape
    assert group["X"].chunks == (n_obs, size)
    assert group["layers/scaled"].chunks == (n_obs, size)
    import scanpy as sc

    pbmc = sc.datasets.pbmc68k_reduced()
    np.testing.assert_array_equal(group["X"][:], pbmc.raw.X.toarray())
    np.testing.assert_allclose(
        group["layers/scaled"][:], sc.pp.scale(pbmc.raw.X.toarray(), copy=True), rtol=1e-6
    )


def expected_requests(manifest, pattern: str) -> int:
    """X chunks a pattern must fetch, from the manifest's layout and the pattern's cells and
    genes alone."""
    entry = x_entry(manifest)
    (n_obs, n_vars), (rows, cols) = entry["shape"], entry["chunks"]
    selection = pattern_selection(pattern, n_obs, n_vars)
    row_blocks = {c // rows for c in selection.cells}
    return len(row_blocks) * len({g // cols for g in selection.genes})


def test_request_counts_follow_the_chunk_layout(gene_chunked):
    store, manifest, size = gene_chunked
    table = measure_store(store, repeats=1).set_index("pattern")
    for pattern in ("one_gene", "fifty_genes", "cell_block", "all_x"):
        assert table.loc[pattern, "requests"] == expected_requests(manifest, pattern), pattern
    if size == 5:
        assert table.loc["one_gene", "requests"] == 1  # the tutorial's observation
    # dense X has no ranges of stored values: each read covers its cells' values of its genes
    assert (table["ranges"] == "").all()
    assert (table["values"] == table["cells"] * table["genes"]).all()
    # one gene costs no more than the stored bytes of the chunk that holds it (+5%)
    column = pattern_selection("one_gene", *x_entry(manifest)["shape"]).genes[0] // size
    stored = x_entry(manifest)["chunk_files"][chunk_key(store, "X", 0, column)][0]
    assert table.loc["one_gene", "bytes"] <= 1.05 * stored


def test_cell_block_is_a_tenth_of_a_small_tissue(pbmc_fetched, tmp_path):
    # pbmc68k_reduced has 700 cells: a fixed block of 1,000 would read all of X again.
    sizes = {n: cell_block_size(n) for n in (0, 5, 700, 781, 10_000, 50_000)}
    assert sizes == {0: 1, 5: 1, 700: 70, 781: 78, 10_000: 1000, 50_000: 1000}
    rechunk_store(pbmc_fetched, tmp_path / "store.zarr", 25, orientation="cells")
    consolidate_store(tmp_path / "store.zarr", tmp_path / "store.manifest.json")
    table = measure_store(tmp_path / "store.zarr", repeats=1).set_index("pattern")
    assert table.loc["cell_block", ["cells", "genes"]].tolist() == [70, 765]
    assert table.loc["all_x", ["cells", "genes"]].tolist() == [700, 765]
    block = pattern_selection("cell_block", 700, 765).cells
    touched = len({cell // 25 for cell in block})  # a block at any offset: 3 or 4 row chunks
    assert table.loc["cell_block", "requests"] == touched < math.ceil(700 / 25)
    assert table.loc["all_x", "requests"] == math.ceil(700 / 25)
    assert table.loc["cell_block", "bytes"] < table.loc["all_x", "bytes"] / 5


#: The open before each cold read of X: the manifest and the consolidated metadata.
METADATA_REQUESTS = 2


def before_the_measured_reads(store, table: pd.DataFrame) -> int:
    """Requests made before the measured reads, uncounted, in a process's first store: the
    store opened (what ``open`` reads), the chunks of X's indptr holding the entries its
    recorded ranges start and end at and its last, and the warm-up (what open reads again)."""
    indptr = zarr.open_group(store, mode="r")["X/indptr"]
    entries = {indptr.shape[0] - 1}
    for text in filter(None, table["ranges"]):
        entries |= {e for low, high in json.loads(text)["pointers"] for e in (low, high - 1)}
    indptr_requests = len({e // indptr.chunks[0] for e in entries})
    return table.loc["open", "requests"] + indptr_requests + table.loc[WARM_UP, "requests"]


def obs_and_var_arrays(store) -> int:
    group = zarr.open_group(store, mode="r")
    members = [m for axis in ("obs", "var") for _, m in group[axis].members(max_depth=None)]
    return sum(isinstance(member, zarr.Array) for member in members)


@pytest.mark.parametrize(
    ("orientation", "shard"), [("cells", 1), ("cells", 4), ("genes", 1), ("genes", 4)]
)
def test_open_costs_one_request_per_obs_and_var_array(
    fetched, tmp_path, monkeypatch, orientation, shard
):
    # obs arrays of many chunks, as at millions of cells
    monkeypatch.setattr(_geometry, "COLUMN_ROWS", 64)
    store = tmp_path / "store.zarr"
    rechunk_store(fetched, store, 50, shard=shard, orientation=orientation)
    consolidate_store(store, tmp_path / "store.manifest.json")
    assert zarr.open_group(store, mode="r")["obs/_index"].shape[0] > 4 * 64
    arrays = obs_and_var_arrays(store)
    table = measure_store(store, repeats=1).set_index("pattern")
    assert table.loc["open", "requests"] == METADATA_REQUESTS + arrays
    assert table.loc["open", "requests"] == open_requests(columns_of(str(fetched)))  # predicted
    # plain anndata and zarr, loading obs and var whole over HTTP: one request per array too
    import anndata as ad

    with aiohttp_serving(tmp_path, tmp_path / "log.jsonl") as url:
        log = RequestLog(tmp_path / "log.jsonl", url)
        log.mark()
        group = zarr.open_group(f"{url}/store.zarr", mode="r", zarr_format=3)  # no v2 probes
        obs, var = ad.io.read_elem(group["obs"]), ad.io.read_elem(group["var"])
        requests, _ = log.traffic()
    assert obs.index.equals(ad.read_zarr(store).obs.index) and len(var) > 0
    assert requests == 1 + arrays  # the consolidated metadata, then each array's one object


def test_seconds_are_the_median_of_cold_reads_of_identical_traffic(consolidated, tmp_path):
    store, _ = consolidated
    with aiohttp_serving(store.parent, tmp_path / "log.jsonl") as url:
        log = RequestLog(tmp_path / "log.jsonl", url)
        rows = run_patterns(f"{url}/store.zarr", log, FAST, repeats=3)
    table = pd.DataFrame([vars(m) for m in rows]).set_index("pattern")
    assert list(table.index) == list(PATTERNS) and (table["repeats"] == 3).all()
    assert (table["seconds_min"] <= table["seconds"]).all()
    assert (table["seconds"] <= table["seconds_max"]).all()
    # every read opened the store afresh: the log holds, per repeat, the open and each
    # pattern's own read after an open of its own (the store's metadata: manifest and
    # consolidated metadata); and before them a whole open, a few entries of indptr and the
    # warm-up, another open
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    reads = [e for e in logged if not e["path"].startswith(MARK_PREFIX)]
    per_repeat = table["requests"].sum() + (len(PATTERNS) - 1) * METADATA_REQUESTS
    assert len(reads) == 3 * per_repeat + before_the_measured_reads(store, table)
    assert sum(e["path"].endswith("/obs/cell_type/c/0") for e in reads) == 3 + 2
    # three cold reads cost what one does
    once = measure_store(store, repeats=1).set_index("pattern")
    traffic = ["cells", "genes", "values", "ranges", "requests", "bytes"]
    pd.testing.assert_frame_equal(table[traffic], once[traffic])


@pytest.mark.parametrize("backend", ["http", pytest.param("s3", marks=pytest.mark.servers)])
def test_only_measured_reads_pay_the_emulated_network(consolidated, tmp_path, backend):
    store, _ = consolidated
    network = Network(latency_ms=5, bandwidth_mbps=800)
    log_path = tmp_path / "log.jsonl"
    log_path.touch()
    with served(backend, store, log_path, "aiohttp", network) as (url, base_url, options):
        settings = FAST
        if options:
            settings = replace(FAST, storage_options={**FAST.storage_options, **options})
        rows = run_patterns(url, RequestLog(log_path, base_url), settings, repeats=2)
    table = pd.DataFrame([vars(m) for m in rows]).set_index("pattern")
    logged = [json.loads(line) for line in log_path.read_text().splitlines()]
    reads = [e for e in logged if not e["path"].startswith(MARK_PREFIX)]
    delayed = [e for e in reads if e["delay"] > 0]
    # the counted reads, each delayed by what the network gives its body; nothing else
    assert len(delayed) == 2 * table["requests"].sum()
    for entry in delayed:
        assert entry["delay"] == pytest.approx(network.seconds(entry["bytes"]), abs=1e-5)
    # what comes before the measured reads and the open before each read are answered too,
    # undelayed
    undelayed = len(reads) - len(delayed)
    before = before_the_measured_reads(store, table)
    assert undelayed == 2 * (len(PATTERNS) - 1) * METADATA_REQUESTS + before


def test_traffic_that_changes_between_repeats_is_refused(consolidated, tmp_path):
    store, _ = consolidated
    faults = Faults(fail_rate=0.2, seed=1)  # retried 503s: more requests on some reads
    with (
        faulty_serving(store.parent, tmp_path / "log.jsonl", faults) as url,
        pytest.raises(ChunkatlasError, match=r"on one cold read and \(.*\) on another"),
    ):
        run_patterns(f"{url}/store.zarr", RequestLog(tmp_path / "log.jsonl", url), FAST)


def test_wider_chunks_mean_fewer_requests_but_more_bytes_for_a_gene_panel(pbmc_fetched, tmp_path):
    costs = {}
    for size in (5, 25):
        rechunk_store(pbmc_fetched, tmp_path / f"c{size}" / "store.zarr", size, orientation="genes")
        consolidate_store(
            tmp_path / f"c{size}" / "store.zarr", tmp_path / f"c{size}" / "store.manifest.json"
        )
        table = measure_store(tmp_path / f"c{size}" / "store.zarr", repeats=1)
        costs[size] = table.set_index("pattern").loc["fifty_genes"]
    assert costs[25]["requests"] < costs[5]["requests"]
    assert costs[25]["bytes"] > costs[5]["bytes"]


@pytest.mark.parametrize("backend", ["http", pytest.param("s3", marks=pytest.mark.servers)])
def test_stores_served_together_cost_what_each_costs_alone(pbmc_fetched, tmp_path, backend):
    """One server for a tissue's stores (the workflow's remote job): each store's traffic is
    its own, as when it is served alone."""
    stores = []
    for size in (5, 25):
        store = tmp_path / f"genes-{size}" / "store.zarr"
        rechunk_store(pbmc_fetched, store, size, orientation="genes")
        consolidate_store(store, store.parent / "store.manifest.json")
        stores.append(store)
    together = measure_stores_backends(stores, backends=[backend], repeats=1)
    traffic = ["pattern", "cells", "genes", "values", "ranges", "requests", "bytes"]
    for store, table in zip(stores, together, strict=True):
        alone = measure_backends(store, backends=[backend], repeats=1)
        pd.testing.assert_frame_equal(table[traffic], alone[traffic])
        assert (table["backend"] == backend).all()
    if backend == "s3":  # both backends side by side, each in a process of its own
        side_by_side = measure_stores_backends(stores, backends=["http", "s3"], processes=2)
        for table, alone in zip(side_by_side, together, strict=True):
            assert list(table["backend"].unique()) == ["http", "s3"]
            in_s3 = table[table["backend"] == "s3"].reset_index(drop=True)
            pd.testing.assert_frame_equal(in_s3[traffic], alone[traffic])
    fifty = [table.set_index("pattern").loc["fifty_genes", "requests"] for table in together]
    assert fifty[1] < fifty[0]  # each table is its own store's


@pytest.mark.servers
def test_nginx_and_aiohttp_count_the_same(gene_chunked):
    store, _, _ = gene_chunked
    ours = measure_store(store, server="aiohttp")
    theirs = measure_store(store, server="nginx")
    assert ours[["pattern", "requests", "bytes"]].equals(theirs[["pattern", "requests", "bytes"]])


@pytest.mark.parametrize("shards", [None, (40,)])
def test_windows_cover_an_array_in_whole_objects_within_the_bounds(tmp_path, monkeypatch, shards):
    from chunkatlas.study import _reads

    array = zarr.create_array(
        tmp_path / "a.zarr", shape=(1_005,), chunks=(10,), shards=shards, dtype="int64"
    )
    unit = (shards or (10,))[0]
    monkeypatch.setattr(_reads, "WINDOW_BYTES", 3 * unit * 8)  # three objects' values
    parts = [window[0] for window in _reads.windows(array)]
    assert parts[0].start == 0 and parts[-1].stop == 1_005
    for before, after in itertools.pairwise(parts):
        assert before.stop == after.start and before.stop % unit == 0
    assert max(p.stop - p.start for p in parts) == 3 * unit
    monkeypatch.setattr(_reads, "WINDOW_BYTES", 1)  # still one object at a time
    assert max(w[0].stop - w[0].start for w in _reads.windows(array)) == unit
    monkeypatch.setattr(_reads, "WINDOW_BYTES", 1 << 40)  # at most zarr's 10 in flight
    sizes = [w[0].stop - w[0].start for w in _reads.windows(array)]
    assert max(sizes) == min(_reads.WINDOW_OBJECTS * unit, 1_005)


def test_a_read_across_the_grain_fetches_every_object_of_x_once(consolidated, monkeypatch):
    from chunkatlas.study import _reads

    store, _ = consolidated
    monkeypatch.setattr(_reads, "WINDOW_BYTES", 1)  # streamed one object at a time
    table = measure_store(store, repeats=1).set_index("pattern")
    across = table.loc[["one_gene", "fifty_genes"], ["requests", "bytes"]]
    assert (across == table.loc["all_x", ["requests", "bytes"]]).all(axis=None)
    assert table.loc["cell_block", "requests"] < table.loc["all_x", "requests"]
    # and no read of data or indices larger than one object: the process never holds X
    read_sizes = []
    getitem = zarr.Array.__getitem__

    def recorded(self, selection):
        values = getitem(self, selection)
        if self.path.endswith(("data", "indices")):
            read_sizes.append((np.size(values), (self.shards or self.chunks)[0]))
        return values

    monkeypatch.setattr(zarr.Array, "__getitem__", recorded)
    x = zarr.open_group(store, mode="r")["X"]
    for pattern in ("one_gene", "all_x"):
        _reads.read_pattern(pattern, x)
    assert read_sizes and all(size <= unit for size, unit in read_sizes)
