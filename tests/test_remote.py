"""Remote reads over real HTTP servers on loopback: request accounting, retries, and never zeros
for a failed read."""

from __future__ import annotations

import json
import math
import time

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import zarr
from zarr.abc.store import RangeByteRequest
from zarr.core.buffer import default_buffer_prototype

from chunkatlas.errors import ChunkatlasError
from chunkatlas.ingest._fetch import fetch_anndata
from chunkatlas.rewrite._consolidate import consolidate_store
from chunkatlas.rewrite._rechunk import rechunk_store
from chunkatlas.store._guarded import CredentialsRefused, RemoteSettings, open_remote_group
from chunkatlas.store._lazy import read_lazy
from chunkatlas.study._measure import (
    PATTERNS,
    WARM_UP,
    RequestLog,
    cell_block_size,
    measure_store,
    pattern_genes,
    run_patterns,
)
from chunkatlas.study._serving import MARK_PREFIX, aiohttp_serving, nginx_serving

from .faulty_server import Faults, faulty_serving
from .stores import chunk_key

FAST = RemoteSettings(attempts=6, backoff_seconds=0.01, timeout_seconds=20)


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
        pbmc_fetched, where / "store.zarr", size, dense_axis="var", zarr_format=zarr_format
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


def expected_requests(manifest, pattern: str, cells: int) -> int:
    """X chunks a pattern must fetch, from the manifest's layout alone (``cells``: those the
    cell block reads)."""
    entry = x_entry(manifest)
    (n_obs, n_vars), (rows, cols) = entry["shape"], entry["chunks"]
    if pattern in ("one_gene", "fifty_genes"):
        genes = pattern_genes(n_vars)[pattern]
        return len({g // cols for g in genes})
    row_blocks = math.ceil((cells if pattern == "cell_block" else n_obs) / rows)
    return row_blocks * math.ceil(n_vars / cols)


def test_request_counts_follow_the_chunk_layout(gene_chunked):
    store, manifest, size = gene_chunked
    table = measure_store(store, 100, repeats=1).set_index("pattern")
    for pattern in ("one_gene", "fifty_genes", "cell_block", "all_x"):
        expected = expected_requests(manifest, pattern, table.loc["cell_block", "cells"])
        assert table.loc[pattern, "requests"] == expected, pattern
    if size == 5:
        assert table.loc["one_gene", "requests"] == 1  # the tutorial's observation
    # one gene costs no more than the stored bytes of the chunk that holds it (+5%)
    column = pattern_genes(x_entry(manifest)["shape"][1])["one_gene"][0] // size
    stored = x_entry(manifest)["chunk_files"][chunk_key(store, "X", 0, column)][0]
    assert table.loc["one_gene", "bytes"] <= 1.05 * stored


def test_cell_block_is_a_tenth_of_a_small_tissue(pbmc_fetched, tmp_path):
    # pbmc68k_reduced has 700 cells: a fixed block of 1,000 would read all of X again.
    sizes = {n: cell_block_size(n) for n in (0, 5, 700, 781, 10_000, 50_000)}
    assert sizes == {0: 1, 5: 1, 700: 70, 781: 78, 10_000: 1000, 50_000: 1000}
    rechunk_store(pbmc_fetched, tmp_path / "store.zarr", 25, dense_axis="obs")
    consolidate_store(tmp_path / "store.zarr", tmp_path / "store.manifest.json")
    table = measure_store(tmp_path / "store.zarr", 100, repeats=1).set_index("pattern")
    assert table.loc["cell_block", ["cells", "genes"]].tolist() == [70, 765]
    assert table.loc["all_x", ["cells", "genes"]].tolist() == [700, 765]
    assert table.loc["cell_block", "requests"] == math.ceil(70 / 25)  # not all 28 row chunks
    assert table.loc["all_x", "requests"] == math.ceil(700 / 25)
    assert table.loc["cell_block", "bytes"] < table.loc["all_x", "bytes"] / 5


def test_seconds_are_the_median_of_cold_reads_of_identical_traffic(consolidated, tmp_path):
    store, _ = consolidated
    with aiohttp_serving(store.parent, tmp_path / "log.jsonl") as url:
        log = RequestLog(tmp_path / "log.jsonl", url)
        rows = run_patterns(f"{url}/store.zarr", log, 100, FAST, repeats=3)
    table = pd.DataFrame([vars(m) for m in rows]).set_index("pattern")
    assert list(table.index) == list(PATTERNS) and (table["repeats"] == 3).all()
    assert (table["seconds_min"] <= table["seconds"]).all()
    assert (table["seconds"] <= table["seconds_max"]).all()
    # every read opened the store afresh: the log holds, per repeat, the open and each
    # pattern's own read after an open of its own; and before them the warm-up, likewise
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    reads = [e for e in logged if not e["path"].startswith(MARK_PREFIX)]
    opens = table.loc["open", "requests"]
    per_repeat = table["requests"].sum() + (len(PATTERNS) - 1) * opens
    assert len(reads) == 3 * per_repeat + opens + table.loc[WARM_UP, "requests"]
    # three cold reads cost what one does
    once = measure_store(store, 100, repeats=1).set_index("pattern")
    traffic = ["cells", "genes", "requests", "bytes"]
    pd.testing.assert_frame_equal(table[traffic], once[traffic])


def test_traffic_that_changes_between_repeats_is_refused(consolidated, tmp_path):
    store, _ = consolidated
    faults = Faults(fail_rate=0.2, seed=1)  # retried 503s: more requests on some reads
    with (
        faulty_serving(store.parent, tmp_path / "log.jsonl", faults) as url,
        pytest.raises(ChunkatlasError, match=r"on one cold read and \(.*\) on another"),
    ):
        run_patterns(f"{url}/store.zarr", RequestLog(tmp_path / "log.jsonl", url), 100, FAST)


def test_wider_chunks_mean_fewer_requests_but_more_bytes_for_a_gene_panel(pbmc_fetched, tmp_path):
    costs = {}
    for size in (5, 25):
        rechunk_store(pbmc_fetched, tmp_path / f"c{size}" / "store.zarr", size, dense_axis="var")
        consolidate_store(
            tmp_path / f"c{size}" / "store.zarr", tmp_path / f"c{size}" / "store.manifest.json"
        )
        table = measure_store(tmp_path / f"c{size}" / "store.zarr", 100, repeats=1)
        costs[size] = table.set_index("pattern").loc["fifty_genes"]
    assert costs[25]["requests"] < costs[5]["requests"]
    assert costs[25]["bytes"] > costs[5]["bytes"]


@pytest.mark.servers
def test_nginx_and_aiohttp_count_the_same(gene_chunked):
    store, _, _ = gene_chunked
    ours = measure_store(store, 100, server="aiohttp")
    theirs = measure_store(store, 100, server="nginx")
    assert ours[["pattern", "requests", "bytes"]].equals(theirs[["pattern", "requests", "bytes"]])


def read_remote_x(url: str, settings=FAST) -> np.ndarray:
    group, _ = open_remote_group(url, settings)
    x = read_lazy(group, 200).X.compute()
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


def local_x(store) -> np.ndarray:
    x = ad.read_zarr(store).X
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


@pytest.mark.parametrize("mode", ["503", "reset"])
def test_failing_server_gives_identical_data(each_format, tmp_path, mode):
    store, _ = each_format
    faults = Faults(fail_rate=0.3, fail_mode=mode, seed=4)
    with faulty_serving(store.parent, tmp_path / "log.jsonl", faults) as url:
        remote = read_remote_x(f"{url}/store.zarr")
    np.testing.assert_array_equal(remote, local_x(store))
    statuses = [
        json.loads(line)["status"] for line in (tmp_path / "log.jsonl").read_text().splitlines()
    ]
    assert statuses.count(503 if mode == "503" else 0) > 0  # faults did happen


def test_a_404_once_is_retried_never_read_as_zeros(each_format, tmp_path):
    store, _ = each_format
    path = f"/store.zarr/X/data/{chunk_key(store, 'X/data', 1)}"
    faults = Faults(missing_once={path})
    with faulty_serving(store.parent, tmp_path / "log.jsonl", faults) as url:
        remote = read_remote_x(f"{url}/store.zarr")
    np.testing.assert_array_equal(remote, local_x(store))
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [e["status"] for e in log if e["path"] == path][:2] == [404, 200]


def test_a_chunk_lost_on_the_server_is_an_error_not_zeros(each_format, tmp_path):
    import shutil

    store, _ = each_format
    served = tmp_path / "served"
    shutil.copytree(store.parent, served)
    key = chunk_key(store, "X/data", 1)
    (served / "store.zarr" / "X" / "data" / key).unlink()
    with (
        aiohttp_serving(served, tmp_path / "log.jsonl") as url,
        pytest.raises(
            ChunkatlasError, match=rf"chunk 'X/data/{key}' .* missing, but the manifest lists it"
        ),
    ):
        read_remote_x(f"{url}/store.zarr", RemoteSettings(attempts=2, backoff_seconds=0.01))


def test_a_stalled_server_fails_within_the_timeout(each_format, tmp_path):
    store, _ = each_format
    key = f"X/data/{chunk_key(store, 'X/data', 0)}"
    faults = Faults(stall={f"/store.zarr/{key}"})
    settings = RemoteSettings(attempts=3, backoff_seconds=0.01, timeout_seconds=2)
    with faulty_serving(store.parent, tmp_path / "log.jsonl", faults) as url:
        start = time.monotonic()
        with pytest.raises(ChunkatlasError, match=rf"chunk '{key}' .* within 2 s"):
            read_remote_x(f"{url}/store.zarr", settings)
        assert time.monotonic() - start < 30  # bounded by the timeout, not aiohttp's 300 s


@pytest.mark.parametrize("mode", ["full", "short"])
def test_wrong_answers_to_range_requests_are_errors(each_format, tmp_path, mode):
    store, _ = each_format
    with faulty_serving(store.parent, tmp_path / "log.jsonl", Faults(bad_range=mode)) as url:
        group, _ = open_remote_group(f"{url}/store.zarr", FAST)
        guarded = group.store
        with pytest.raises(ChunkatlasError, match=r"asked 10 bytes, got \d+"):
            key = f"X/data/{chunk_key(store, 'X/data', 0)}"
            zarr.core.sync.sync(
                guarded.get(key, default_buffer_prototype(), RangeByteRequest(5, 15))
            )


def test_bad_credentials_fail_at_once_and_are_redacted(consolidated, tmp_path):
    store, _ = consolidated
    faults = Faults(require_auth="reader:right")
    with faulty_serving(store.parent, tmp_path / "log.jsonl", faults) as url:
        good = url.replace("http://", "http://reader:right@")
        np.testing.assert_array_equal(read_remote_x(f"{good}/store.zarr"), local_x(store))
        bad = url.replace("http://", "http://reader:wrong@")
        start = time.monotonic()
        with pytest.raises(CredentialsRefused) as err:
            read_remote_x(f"{bad}/store.zarr")
        assert time.monotonic() - start < 5  # no retries
    assert "wrong" not in str(err.value) and "***@" in str(err.value)
    assert "\n" not in str(err.value)


def test_remote_store_without_manifest_is_refused(consolidated, tmp_path):
    import shutil

    store, _ = consolidated
    shutil.copytree(store, tmp_path / "lonely.zarr")
    with (
        aiohttp_serving(tmp_path, tmp_path / "log.jsonl") as url,
        pytest.raises(ChunkatlasError, match="no manifest at"),
    ):
        open_remote_group(f"{url}/lonely.zarr", FAST)


@pytest.mark.servers
def test_fetch_reads_an_anndata_store_over_http(consolidated, tmp_path):
    store, _ = consolidated
    with nginx_serving(store.parent, tmp_path / "log.jsonl") as url:
        fetch_anndata(
            f"{url}/store.zarr", "lung", tmp_path / "copy.zarr", chunk_rows=100, settings=FAST
        )
    np.testing.assert_array_equal(local_x(tmp_path / "copy.zarr"), local_x(store))


@pytest.mark.servers
def test_fetch_reads_h5ad_over_http(consolidated, tmp_path):
    store, _ = consolidated
    adata = ad.read_zarr(store)
    adata.write_h5ad(tmp_path / "atlas.h5ad")
    with nginx_serving(tmp_path, tmp_path / "log.jsonl") as url:
        fetch_anndata(
            f"{url}/atlas.h5ad",
            "lung",
            tmp_path / "copy.zarr",
            chunk_rows=100,
            tissue_column="tissue_general",
            settings=FAST,
        )
    np.testing.assert_array_equal(local_x(tmp_path / "copy.zarr"), adata.X.toarray())
