"""Analysis straight from HTTP and S3 servers on loopback: every Dask worker opens the store and
reads its own chunks; results equal the local analysis bit for bit; each pass's reads are
counted; faults give identical data or one line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store
from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import RemoteSettings, load_manifest
from chunkatlas.study import Network
from chunkatlas.study._http import aiohttp_serving
from chunkatlas.study._network import MARK_PREFIX
from chunkatlas.study._s3 import s3_serving

from ..support.dask_cluster import BIN, external_cluster
from ..support.faulty_server import Faults, faulty_serving
from ..support.stores import chunk_key

pytestmark = pytest.mark.servers

FAST = RemoteSettings(attempts=6, backoff_seconds=0.01, timeout_seconds=20)
TWO_WORKERS = ClusterSettings(workers=2, memory_mb=2048)
READING = {  # the steps of each engine that read X
    "fused": ("moments", "gram"),  # no pass 1: the store's obs records raw_sum
    "scanpy": ("check_counts", "normalize_total", "highly_variable_genes", "pca"),
}


def params(engine: str) -> AnalysisParams:
    return AnalysisParams(n_top_genes=150, n_comps=20, engine=engine)


@pytest.fixture(scope="module")
def local_results(consolidated, tmp_path_factory) -> dict[str, Path]:
    """The local analysis of ``consolidated`` by each engine: the reference."""
    store, _ = consolidated
    where = tmp_path_factory.mktemp("local")
    results = {}
    for engine in READING:
        results[engine] = where / f"{engine}.zarr"
        analyze_store(
            store, results[engine], task_cells=200, params=params(engine), cluster=TWO_WORKERS
        )
    return results


def analyze_url(url: str, out: Path, engine: str = "fused", remote=FAST, cluster=TWO_WORKERS):
    """The analysis of the store at ``url`` (200 cells per task) into ``out``."""
    return analyze_store(
        url, out, task_cells=200, params=params(engine), cluster=cluster, remote=remote
    )


def assert_identical(ours: Path, reference: Path) -> None:
    """Bit for bit: PCA coordinates, loadings, variances and every var column."""
    a, b = ad.read_zarr(ours), ad.read_zarr(reference)
    np.testing.assert_array_equal(np.asarray(a.obsm["X_pca"]), np.asarray(b.obsm["X_pca"]))
    np.testing.assert_array_equal(a.varm["PCs"], b.varm["PCs"])
    np.testing.assert_array_equal(a.uns["pca"]["variance"], b.uns["pca"]["variance"])
    pd.testing.assert_frame_equal(a.var, b.var, check_exact=True)
    pd.testing.assert_frame_equal(a.obs, b.obs)


def x_bytes(manifest: dict) -> int:
    """Stored bytes of X's values and column indices."""
    return sum(
        size
        for array in manifest["arrays"]
        if array["path"] in ("X/data", "X/indices")
        for size, _ in array["chunk_files"].values()
    )


def server_requests(log_path: Path) -> list[dict]:
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    return [e for e in entries if not e["path"].startswith(MARK_PREFIX)]


@pytest.mark.parametrize("engine", ["fused", "scanpy"])
def test_analysis_over_http_equals_the_local_one_and_counts_every_request(
    consolidated, local_results, tmp_path, engine
):
    store, manifest_path = consolidated
    log_path = tmp_path / "requests.jsonl"
    with aiohttp_serving(store.parent, log_path, network=Network(latency_ms=10)) as url:
        result = analyze_url(f"{url}/store.zarr", tmp_path / "remote.zarr", engine)
    assert_identical(tmp_path / "remote.zarr", local_results[engine])
    record = result.uns["chunkatlas"]
    assert record["read"] == "http" and record["store"] == f"{url}/store.zarr"
    passes = record["passes"]
    for step in READING[engine]:
        assert passes[step]["requests"] > 0 and passes[step]["bytes"] > 0, step
        assert passes[step]["retries"] == 0
    if engine == "fused":  # library sizes from obs, HVG values kept: X read twice
        assert "library_sizes" not in passes and passes["projection"]["requests"] == 0
    # every request the server answered is in the record, the workers' and the driver's
    workers = sum(p["requests"] for p in passes.values())
    assert workers + record["driver_reads"]["requests"] == len(server_requests(log_path))
    # X's values came to the workers, each at least twice; the driver read at most the rest
    stored_x = x_bytes(load_manifest(manifest_path))
    assert sum(p["bytes"] for p in passes.values()) >= 2 * stored_x
    served = sum(f.stat().st_size for f in store.parent.rglob("*") if f.is_file())
    assert record["driver_reads"]["bytes"] <= served - stored_x
    # the record is in the result store too
    written = ad.read_zarr(tmp_path / "remote.zarr").uns["chunkatlas"]["passes"]
    assert {step: dict(p) for step, p in written.items()} == passes


def test_large_objects_reach_the_workers_in_parts_with_every_request_counted(
    consolidated, local_results, tmp_path
):
    """The analysis reads objects above ``part_bytes`` as ranges requested together (the
    default part is 2 MiB; the test's chunks are smaller, so a smaller part here)."""
    store, manifest_path = consolidated
    log_path = tmp_path / "requests.jsonl"
    in_parts = RemoteSettings(attempts=6, backoff_seconds=0.01, timeout_seconds=20, part_bytes=500)
    with aiohttp_serving(store.parent, log_path) as url:
        result = analyze_url(f"{url}/store.zarr", tmp_path / "remote.zarr", remote=in_parts)
    assert_identical(tmp_path / "remote.zarr", local_results["fused"])
    log = server_requests(log_path)
    record = result.uns["chunkatlas"]
    workers = sum(p["requests"] for p in record["passes"].values())
    assert workers + record["driver_reads"]["requests"] == len(log)
    data = [e for e in log if e["path"].startswith("/store.zarr/X/data/")]
    sizes = {
        f"/store.zarr/X/data/{key}": size
        for array in load_manifest(manifest_path)["arrays"]
        if array["path"] == "X/data"
        for key, (size, _) in array["chunk_files"].items()
    }
    assert max(sizes.values()) > 500
    for path, size in sizes.items():
        ranges = {e["range"] for e in data if e["path"] == path}
        assert len(ranges) == -(-size // 500)  # ceil: a request per part


def test_analysis_over_s3_equals_the_local_one(consolidated, local_results, tmp_path):
    store, _ = consolidated
    with s3_serving(store, tmp_path / "requests.jsonl") as (prefix, options):
        result = analyze_url(
            f"{prefix}/store.zarr",
            tmp_path / "remote.zarr",
            remote=RemoteSettings(storage_options=options),
        )
    assert_identical(tmp_path / "remote.zarr", local_results["fused"])
    assert result.uns["chunkatlas"]["read"] == "s3"
    assert "testing" not in json.dumps(result.uns["chunkatlas"], default=str)  # no credentials


def test_workers_sharing_no_file_system_analyse_a_store_in_a_bucket(
    consolidated, local_results, tmp_path
):
    """Workers in folders of their own; the store's local copy is gone before the analysis."""
    store, manifest = consolidated
    copy = tmp_path / "upload" / "store.zarr"
    shutil.copytree(store, copy)
    shutil.copy(manifest, copy.parent / "store.manifest.json")
    with (
        external_cluster(tmp_path / "cluster") as address,
        s3_serving(copy, tmp_path / "requests.jsonl") as (prefix, options),
    ):
        shutil.rmtree(copy.parent)  # nobody can read it from disk now
        analyze_url(
            f"{prefix}/store.zarr",
            tmp_path / "remote.zarr",
            remote=RemoteSettings(storage_options=options),
            cluster=ClusterSettings(workers=2, scheduler_address=address),
        )
    assert_identical(tmp_path / "remote.zarr", local_results["fused"])


def test_a_store_in_the_layout_before_obs_was_one_object_is_read_and_analysed(
    fetched, local_results, tmp_path, monkeypatch
):
    # Stores written before obs and var arrays were one object each: chunked and sharded like
    # X (200 cells a chunk here, 2 chunks a shard).
    from chunkatlas.rewrite import _geometry, _rechunk, consolidate_store, rechunk_store

    def as_x(codec, zarr_format, length):
        return _geometry.array_settings(codec, zarr_format, (min(200, length),), (length,), 2)

    monkeypatch.setattr(_rechunk, "column_settings", as_x)
    store = tmp_path / "served" / "store.zarr"
    rechunk_store(fetched, store, 200, shard=2)
    consolidate_store(store, tmp_path / "served" / "store.manifest.json")
    assert len(list((store / "obs" / "_index" / "c").iterdir())) > 1  # several objects
    with aiohttp_serving(store.parent, tmp_path / "log.jsonl") as url:
        analyze_url(f"{url}/store.zarr", tmp_path / "remote.zarr", "fused")
    assert_identical(tmp_path / "remote.zarr", local_results["fused"])


@pytest.mark.parametrize("engine", ["fused", "scanpy"])
def test_a_one_off_404_and_503s_give_identical_results(
    consolidated, local_results, tmp_path, engine
):
    store, _ = consolidated
    missing = f"/store.zarr/X/data/{chunk_key(store, 'X/data', 1)}"
    faults = Faults(fail_rate=0.2, missing_once={missing}, seed=7)
    log_path = tmp_path / "requests.jsonl"
    with faulty_serving(store.parent, log_path, faults) as url:
        result = analyze_url(f"{url}/store.zarr", tmp_path / "remote.zarr", engine)
    assert_identical(tmp_path / "remote.zarr", local_results[engine])
    statuses = [e["status"] for e in server_requests(log_path)]
    assert 404 in statuses and 503 in statuses  # the faults happened
    retried = result.uns["chunkatlas"]["driver_reads"]["retries"] + sum(
        p["retries"] for p in result.uns["chunkatlas"]["passes"].values()
    )
    assert retried == statuses.count(404) + statuses.count(503)


def cli_analyze(url: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [str(BIN / "chunkatlas"), "analyze", url, str(out), "--chunk", "200"]
    command += ["--workers", "2", "--n-top-genes", "150", "--n-comps", "20", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("chunkatlas: error: ") and "Traceback" not in done.stderr
    return lines[-1]


def test_a_stalled_chunk_fails_in_one_line_naming_it(consolidated, tmp_path):
    store, _ = consolidated
    key = f"X/data/{chunk_key(store, 'X/data', 2)}"
    with faulty_serving(
        store.parent, tmp_path / "log.jsonl", Faults(stall={f"/store.zarr/{key}"})
    ) as url:
        done = cli_analyze(f"{url}/store.zarr", tmp_path / "out.zarr", "--timeout-seconds", "2")
    line = one_line_error(done)
    assert f"chunk '{key}'" in line and "within 2 s" in line
    assert not (tmp_path / "out.zarr").exists()


def test_refused_credentials_fail_in_one_line_without_the_secret(consolidated, tmp_path):
    store, _ = consolidated
    faults = Faults(require_auth="reader:right")
    with faulty_serving(store.parent, tmp_path / "log.jsonl", faults) as url:
        bad = url.replace("http://", "http://reader:wrong-secret@")
        done = cli_analyze(f"{bad}/store.zarr", tmp_path / "out.zarr")
        good = url.replace("http://", "http://reader:right@")
        cli_analyze(f"{good}/store.zarr", tmp_path / "good.zarr", "--plot", str(tmp_path / "p.png"))
    line = one_line_error(done)
    assert "credentials refused" in line and "wrong-secret" not in done.stderr
    assert not (tmp_path / "out.zarr").exists()
    assert (tmp_path / "good.zarr").exists() and (tmp_path / "p.png").exists()


def test_a_store_without_manifest_is_analysed_with_a_warning(consolidated, local_results, tmp_path):
    store, _ = consolidated
    shutil.copytree(store, tmp_path / "served" / "store.zarr")  # no manifest beside it
    with aiohttp_serving(tmp_path / "served", tmp_path / "log.jsonl") as url:
        done = cli_analyze(f"{url}/store.zarr", tmp_path / "remote.zarr", "--attempts", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "no manifest beside" in done.stderr and "missing chunks cannot be detected" in done.stderr
    )
    assert_identical(tmp_path / "remote.zarr", local_results["fused"])


def test_a_chunk_lost_on_the_server_fails_the_analysis_never_zeros(consolidated, tmp_path):
    store, manifest = consolidated
    served = tmp_path / "served"
    shutil.copytree(store.parent, served)
    key = chunk_key(store, "X/indices", 3)
    (served / "store.zarr" / "X" / "indices" / key).unlink()
    settings = RemoteSettings(attempts=2, backoff_seconds=0.01)
    with (
        aiohttp_serving(served, tmp_path / "log.jsonl") as url,
        pytest.raises(
            ChunkatlasError, match=rf"chunk 'X/indices/{key}' .* missing, but the manifest"
        ),
    ):
        analyze_url(f"{url}/store.zarr", tmp_path / "remote.zarr", remote=settings)
    assert not (tmp_path / "remote.zarr").exists()
