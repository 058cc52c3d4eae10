"""The whole workflow with no shared file system: every output in an S3 bucket (moto on
loopback), through Snakemake's default storage provider and the object-store profile."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from chunkatlas.store import load_manifest, verify_store
from tests.support.bucket import (
    ACCESS_KEY,
    SECRET_KEY,
    bucket_filesystem,
    bucket_serving,
    storage_environment,
)
from tests.support.workflow_runs import (
    REPO,
    SNAKEMAKE,
    geometries,
    job_counts,
    one_tissue_config,
    results_dir,
    snakemake,
    store_dir,
    stores,
)

pytestmark = [pytest.mark.workflow, pytest.mark.servers]

CONFIG = REPO / "config" / "test.yaml"
TEST_CONFIG = yaml.safe_load(CONFIG.read_text())
BUCKET = "chunkatlas-runs"


def object_store_args(prefix: str, config: Path = CONFIG) -> list[str]:
    return [
        "--profile",
        str(REPO / "profiles" / "object-store"),
        "--cores",
        "2",
        "--configfile",
        str(config),
        "--default-storage-prefix",
        prefix,
    ]


def in_bucket(prefix: str, *parts: str) -> str:
    """The bucket key of a file of the run (s3fs paths have no scheme)."""
    return "/".join([prefix.removeprefix("s3://"), "results", TEST_CONFIG["run"], *parts])


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """(endpoint, request log) of an S3 server on loopback."""
    log = tmp_path_factory.mktemp("bucket") / "requests.jsonl"
    log.touch()
    with bucket_serving(log) as endpoint:
        yield endpoint, log


@pytest.fixture(scope="module")
def one_tissue(tmp_path_factory) -> tuple[Path, dict]:
    """config/test.yaml for one tissue: its stores are the local run's, at half the jobs."""
    return one_tissue_config(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def bucket_run(bucket, one_tissue, tmp_path_factory):
    """One run of ``one_tissue`` with every output in the bucket: (workdir, prefix, run)."""
    endpoint, _ = bucket
    workdir = tmp_path_factory.mktemp("object-store-run")
    prefix = f"s3://{BUCKET}/first"
    args = object_store_args(prefix, one_tissue[0])
    done = snakemake(workdir, *args, env=storage_environment(endpoint))
    assert done.returncode == 0, done.stderr[-5000:]
    return workdir, prefix, done


def download(fs, key: str, where: Path) -> Path:
    fs.get(key, str(where), recursive=True)
    return where


def assert_same_result(found: ad.AnnData, expected: ad.AnnData) -> None:
    """Every value of the analysis equal bit for bit (provenance aside: it names the store)."""
    np.testing.assert_array_equal(found.obsm["X_pca"], expected.obsm["X_pca"])
    np.testing.assert_array_equal(found.varm["PCs"], expected.varm["PCs"])
    pd.testing.assert_frame_equal(found.var, expected.var, check_exact=True)
    pd.testing.assert_frame_equal(found.obs, expected.obs, check_exact=True)
    for key in ("variance", "variance_ratio"):
        np.testing.assert_array_equal(found.uns["pca"][key], expected.uns["pca"][key])


def test_every_output_lands_in_the_bucket_and_no_store_stays_local(bucket, bucket_run, one_tissue):
    endpoint, log = bucket
    _, config = one_tissue
    workdir, prefix, _ = bucket_run
    fs = bucket_filesystem(endpoint)
    local_stores = [p for p in workdir.rglob("*") if p.suffix in (".zarr", ".soma")]
    assert local_stores == []
    for name in ("demo_atlas.objects.json", "summary.tsv", "remote.tsv", "recommendation.tsv"):
        assert fs.exists(in_bucket(prefix, name)), name
    assert fs.exists(in_bucket(prefix, "provenance", "config.yaml"))
    assert fs.exists(in_bucket(prefix, "summary", "steps.png"))
    assert fs.find(in_bucket(prefix, "demo_atlas.soma"))
    for tissue in config["tissues"]:
        assert fs.find(in_bucket(prefix, tissue, "fetched.zarr"))
    uploads = [
        entry["path"]
        for entry in map(json.loads, log.read_text().splitlines())
        if entry["method"] == "PUT"
    ]
    for geometry in stores(config):
        folder = store_dir(*geometry)
        manifest = json.loads(fs.cat(in_bucket(prefix, folder, "store.manifest.json")))
        written = json.loads(fs.cat(in_bucket(prefix, folder, "store.objects.json")))
        # one object per file, and one upload per object (the consolidated metadata: twice)
        objects = fs.find(in_bucket(prefix, folder, "store.zarr"))
        assert len(objects) == written["objects"] == manifest["moved"]["objects"]
        assert sum(fs.size(key) for key in objects) == manifest["moved"]["bytes"]
        store_key = "/" + in_bucket(prefix, folder, "store.zarr") + "/"
        assert len([path for path in uploads if path.startswith(store_key)]) == len(objects) + 1
    for geometry in geometries(config):
        folder = store_dir(*geometry)
        assert fs.exists(in_bucket(prefix, folder, "pca.png"))
        assert fs.find(in_bucket(prefix, folder, "hvg_pca.zarr"))
    # no store in the bucket holds an object that is not the store's (Snakemake's marker)
    keys = fs.find(prefix.removeprefix("s3://"))
    assert not [k for k in keys if re.search(r"\.(zarr|soma)/", k) and ".snakemake" in k]
    summary = pd.read_csv(fs.open(in_bucket(prefix, "summary.tsv")), sep="\t")
    assert (summary["rechunk_moved_objects"] == summary["objects"]).all()
    assert (summary["moved_objects"] > summary["rechunk_moved_objects"]).all()


def test_results_and_stores_equal_a_local_run_bit_for_bit(
    test_run, bucket, bucket_run, one_tissue, tmp_path
):
    local_workdir, _ = test_run
    _, config = one_tissue
    endpoint, _ = bucket
    _, prefix, _ = bucket_run
    fs = bucket_filesystem(endpoint)
    local = results_dir(local_workdir, config)
    for geometry in stores(config):
        folder = store_dir(*geometry)
        manifest = json.loads(fs.cat(in_bucket(prefix, folder, "store.manifest.json")))
        expected = load_manifest(local / folder / "store.manifest.json")
        assert manifest["arrays"] == expected["arrays"]  # every chunk's size and CRC-32
    for geometry in geometries(config):
        folder = store_dir(*geometry)
        where = download(fs, in_bucket(prefix, folder, "hvg_pca.zarr"), tmp_path / folder)
        assert_same_result(ad.read_zarr(where), ad.read_zarr(local / folder / "hvg_pca.zarr"))


def test_analysis_reads_each_store_in_the_bucket_and_downloads_none(
    bucket, bucket_run, one_tissue, tmp_path
):
    endpoint, _ = bucket
    _, config = one_tissue
    workdir, prefix, done = bucket_run
    inputs = re.findall(r"rule analyze:\n\s+input: (.*)", done.stdout + done.stderr)
    assert len(inputs) == len(list(geometries(config)))
    for job in inputs:  # the store's record and manifest: Snakemake retrieves no store
        assert "store.objects.json" in job and ".zarr" not in job
    assert not list(workdir.rglob("store.zarr"))
    fs = bucket_filesystem(endpoint)
    folder = store_dir(*next(geometries(config)))
    result = download(fs, in_bucket(prefix, folder, "hvg_pca.zarr"), tmp_path / "hvg.zarr")
    uns = ad.read_zarr(result).uns
    record = uns["chunkatlas"]
    assert record["read"] == "s3"
    assert sum(int(p["requests"]) for p in record["passes"].values()) > 0


def test_a_second_empty_working_directory_has_nothing_to_do(
    bucket, bucket_run, one_tissue, tmp_path
):
    endpoint, _ = bucket
    _, prefix, _ = bucket_run
    args = object_store_args(prefix, one_tissue[0])
    done = snakemake(tmp_path, *args, "-n", env=storage_environment(endpoint))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Nothing to be done" in done.stdout + done.stderr


def test_a_changed_config_reruns_what_it_changes(bucket, bucket_run, one_tissue, tmp_path):
    endpoint, _ = bucket
    workdir, prefix, _ = bucket_run
    _, run = one_tissue
    changed = {**run, "analysis": {**run["analysis"], "n_top_genes": 150}}
    config = tmp_path / "changed.yaml"
    config.write_text(yaml.safe_dump(changed))
    done = snakemake(
        workdir, *object_store_args(prefix, config), "-n", env=storage_environment(endpoint)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counts = job_counts(done.stdout + done.stderr)
    analysed = len(list(geometries(run)))
    assert counts["analyze"] == counts["plot_pca"] == analysed
    assert not {"demo", "fetch", "rechunk", "consolidate", "remote"} & set(counts)


def test_credentials_never_reach_a_log_the_provenance_or_a_result(bucket, bucket_run):
    endpoint, _ = bucket
    workdir, prefix, done = bucket_run
    secrets = (ACCESS_KEY.encode(), SECRET_KEY.encode())
    assert not any(s.decode() in done.stdout + done.stderr for s in secrets)
    for path in workdir.rglob("*"):
        if path.is_file():
            assert not any(s in path.read_bytes() for s in secrets), path
    fs = bucket_filesystem(endpoint)
    for key in fs.find(prefix.removeprefix("s3://")):
        assert not any(s in fs.cat(key) for s in secrets), key


def wait_for_uploads(log: Path, into: str, count: int, process, seconds: float = 600) -> None:
    """Wait until ``count`` objects have been uploaded under ``into`` (a key prefix)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before the upload"
        lines = log.read_text().splitlines()
        puts = [e for e in map(json.loads, lines) if e["method"] == "PUT"]
        if len([e for e in puts if e["path"].startswith(into)]) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no upload into {into}")


def test_a_run_killed_during_an_upload_is_finished_by_a_rerun(test_run, one_tissue, tmp_path):
    """Killed while a store is half in the bucket: a rerun from an empty working directory
    (nothing of the first run's bookkeeping) takes the store as unfinished and writes it
    again, to the same results."""
    local_workdir, _ = test_run
    config_path, config = one_tissue
    log = tmp_path / "requests.jsonl"
    log.touch()
    prefix = f"s3://{BUCKET}/killed"
    folder = store_dir(*next(stores(config)))
    with bucket_serving(log, slow_uploads=0.05) as endpoint:
        env = storage_environment(endpoint)
        run_args = object_store_args(prefix, config_path)
        args = [*SNAKEMAKE, "--directory", str(tmp_path / "first"), *run_args]
        run = subprocess.Popen(
            args,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            into = "/" + in_bucket(prefix, folder, "store.zarr") + "/"
            wait_for_uploads(log, into, 5, run)
        finally:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        fs = bucket_filesystem(endpoint)
        half = fs.find(in_bucket(prefix, folder, "store.zarr"))
        assert 0 < len(half)
        assert not fs.exists(in_bucket(prefix, folder, "store.objects.json"))

        done = snakemake(tmp_path / "again", *run_args, env=env)
        assert done.returncode == 0, done.stderr[-5000:]
        assert job_counts(done.stdout + done.stderr)["rechunk"] >= 1
        written = json.loads(fs.cat(in_bucket(prefix, folder, "store.objects.json")))
        assert len(fs.find(in_bucket(prefix, folder, "store.zarr"))) == written["objects"]
        store = download(fs, in_bucket(prefix, folder, "store.zarr"), tmp_path / "store.zarr")
        manifest = download(
            fs, in_bucket(prefix, folder, "store.manifest.json"), tmp_path / "store.manifest.json"
        )
        verify_store(store, manifest)  # every chunk as its manifest records it
        local = results_dir(local_workdir, config) / folder
        result = download(fs, in_bucket(prefix, folder, "hvg_pca.zarr"), tmp_path / "hvg.zarr")
        assert_same_result(ad.read_zarr(result), ad.read_zarr(local / "hvg_pca.zarr"))


def test_no_credentials_is_one_line_before_any_job(tmp_path):
    """Without keys anywhere, the run stops at once with one line, not a traceback per
    output whose existence Snakemake tried to check."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAKEMAKE_STOR"))}
    env.update(HOME=str(tmp_path), AWS_EC2_METADATA_DISABLED="true")
    done = snakemake(tmp_path, *object_store_args(f"s3://{BUCKET}/nokeys"), "-n", env=env)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"chunkatlas: error: no S3 credentials for s3://{BUCKET}/nokeys" in output
    assert "Traceback" not in output
