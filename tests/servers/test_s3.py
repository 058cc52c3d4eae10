"""The same readers against an S3-protocol server on loopback (moto's server mode)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest

from chunkatlas.errors import ChunkatlasError
from chunkatlas.ingest import fetch_tissue
from chunkatlas.ingest._fetch import fetch_anndata
from chunkatlas.rewrite import consolidate_store, rechunk_store
from chunkatlas.store import (
    Bucket,
    RemoteSettings,
    directory_objects,
    manifest_location,
    open_remote_group,
    read_dask_backed,
)
from chunkatlas.store._guarded import CredentialsRefused
from chunkatlas.study import measure_backends
from chunkatlas.study._server_process import free_port
from chunkatlas.workflow import WorkflowStore, bucket_of_storage_settings, store_in

pytestmark = pytest.mark.servers

REGION = "us-west-2"


def start_moto(env_extra: dict | None = None):
    port = free_port()
    env = {**os.environ, **(env_extra or {})}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto server did not start")


def s3_options(endpoint: str, key: str = "testing", secret: str = "testing") -> dict:
    return {
        "key": key,
        "secret": secret,
        "client_kwargs": {"endpoint_url": endpoint, "region_name": REGION},
        "config_kwargs": {"s3": {"addressing_style": "path"}},
    }


@pytest.fixture(scope="module")
def s3(consolidated, atlas):
    """A moto S3 server holding a consolidated store (with its manifest) and a SOMA atlas."""
    import s3fs

    server, endpoint = start_moto()
    try:
        fs = s3fs.S3FileSystem(**s3_options(endpoint))
        fs.mkdir("atlas-bucket", region_name=REGION)
        store, manifest = consolidated
        fs.put(str(store), "atlas-bucket/lung/store.zarr", recursive=True)
        fs.put(str(manifest), "atlas-bucket/lung/store.manifest.json")
        fs.put(atlas, "atlas-bucket/atlas.soma", recursive=True)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_zarr_store_reads_back_over_s3(s3, consolidated):
    store, _ = consolidated
    settings = RemoteSettings(storage_options=s3_options(s3))
    group, manifest = open_remote_group("s3://atlas-bucket/lung/store.zarr", settings)
    remote = read_dask_backed(group, 150).X.compute()
    assert (remote != ad.read_zarr(store).X).nnz == 0
    assert manifest["consolidated"]


def test_fetch_anndata_from_s3(s3, consolidated, tmp_path):
    store, _ = consolidated
    fetch_anndata(
        "s3://atlas-bucket/lung/store.zarr",
        "lung",
        tmp_path / "copy.zarr",
        chunk_rows=100,
        settings=RemoteSettings(storage_options=s3_options(s3)),
    )
    assert (ad.read_zarr(tmp_path / "copy.zarr").X != ad.read_zarr(store).X).nnz == 0


def test_soma_fetch_from_s3(s3, fetched, tmp_path):
    host = s3.removeprefix("http://")
    tiledb_config = {
        "vfs.s3.endpoint_override": host,
        "vfs.s3.scheme": "http",
        "vfs.s3.use_virtual_addressing": "false",
        "vfs.s3.region": REGION,
        "vfs.s3.aws_access_key_id": "testing",
        "vfs.s3.aws_secret_access_key": "testing",
    }
    fetch_tissue(
        "s3://atlas-bucket/atlas.soma",
        "lung",
        tmp_path / "lung.zarr",
        chunk_rows=300,
        tiledb_config=tiledb_config,
    )
    ours, local = ad.read_zarr(tmp_path / "lung.zarr"), ad.read_zarr(fetched)
    assert (ours.X != local.X).nnz == 0
    assert list(ours.obs_names) == list(local.obs_names)


def test_missing_s3_object_is_an_error(s3):
    settings = RemoteSettings(storage_options=s3_options(s3), attempts=2, backoff_seconds=0.01)
    with pytest.raises(ChunkatlasError, match="no manifest at s3://atlas-bucket/nope.manifest"):
        open_remote_group("s3://atlas-bucket/nope.zarr", settings)


def test_bad_s3_credentials_fail_at_once_without_the_secret():
    server, endpoint = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # moto checks keys
    try:
        secret = "not-the-right-secret-123"
        settings = RemoteSettings(storage_options=s3_options(endpoint, "AKIAWRONG", secret))
        start = time.monotonic()
        with pytest.raises(CredentialsRefused) as err:
            open_remote_group("s3://atlas-bucket/lung/store.zarr", settings)
        assert time.monotonic() - start < 20
        assert secret not in str(err.value) and "\n" not in str(err.value)
    finally:
        server.terminate()
        server.wait(timeout=10)


def run_bucket(endpoint: str) -> Bucket:
    return bucket_of_storage_settings(
        "s3://atlas-bucket",
        endpoint_url=endpoint,
        region=REGION,
        access_key="testing",
        secret_key="testing",
    )


def test_the_runs_own_bucket_is_measured_with_the_requests_a_loopback_server_counts(
    s3, consolidated
):
    """``remote`` in an object-store run measures the bucket itself; the reader's own count of
    requests and bytes there equals what the logging S3 server on loopback answers."""
    store, _ = consolidated
    url = run_bucket(s3).url("lung/store.zarr")
    in_bucket = measure_backends(store, backends=["s3"], repeats=1, in_bucket=(url, run_bucket(s3)))
    on_loopback = measure_backends(store, backends=["s3"], repeats=1)
    assert set(in_bucket["server"]) == {"bucket"} and set(on_loopback["server"]) == {"moto"}
    columns = ["pattern", "requests", "bytes", "objects", "store_bytes"]
    pd.testing.assert_frame_equal(in_bucket[columns], on_loopback[columns])
    assert (in_bucket["requests"] > 0).all()


def test_consolidating_a_retrieved_store_puts_its_metadata_back_in_the_bucket(
    s3, fetched, tmp_path
):
    """consolidate works on Snakemake's local copy of a store in the bucket: the consolidated
    metadata reaches the bucket before the manifest exists, and a remote reader opens it."""
    import s3fs

    store, manifest = tmp_path / "store.zarr", tmp_path / "store.manifest.json"
    rechunk_store(fetched, store, 200)
    fs = s3fs.S3FileSystem(**s3_options(s3))
    fs.put(str(store), "atlas-bucket/retrieved/store.zarr", recursive=True)
    bucket = run_bucket(s3)
    url = bucket.url("retrieved/store.zarr")
    written = consolidate_store(store, manifest, in_bucket=(url, bucket))
    assert written["moved"] == directory_objects(store)
    fs.put(str(manifest), "atlas-bucket/retrieved/store.manifest.json")
    group, found = open_remote_group(url, bucket.reader())
    assert found["consolidated"]
    assert (
        fs.cat("atlas-bucket/retrieved/store.zarr/zarr.json") == (store / "zarr.json").read_bytes()
    )
    assert group["X"].attrs["shape"] == list(ad.read_zarr(store).X.shape)


def files_of(directory) -> dict[str, bytes]:
    root = Path(directory)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_workflow_store_goes_to_the_bucket_whole_and_comes_back_as_written(s3, fetched, tmp_path):
    """A job's store in the run's bucket: the previous run's objects replaced, one object per
    file and nothing else, no copy left on the job's disk; a reader's copy equals it and is
    gone after the job."""
    import s3fs

    bucket = run_bucket(s3)
    url = bucket.url("jobs/store.zarr")
    fs = s3fs.S3FileSystem(**s3_options(s3))
    fs.pipe("atlas-bucket/jobs/store.zarr/X/data/c/99", b"a previous run's chunk")
    path = tmp_path / "results" / "store.zarr"
    rechunk_store(fetched, path, 200)
    written = files_of(path)
    store = WorkflowStore(str(path), url, bucket)
    assert store.where == url and store.in_bucket == (url, bucket)
    # what a job derives from its declared record, as Snakemake keeps it on the job's disk
    record = ".snakemake/storage/s3/atlas-bucket/jobs/store.objects.json"
    assert store_in(record, bucket).url == url

    store.publish()
    assert not path.exists()
    keys = {k.removeprefix("atlas-bucket/jobs/store.zarr/") for k in fs.find(url)}
    assert keys == set(written)
    (tmp_path / "store.manifest.json").write_text("{}")
    with store.local_copy(beside=[tmp_path / "store.manifest.json"]) as copy:
        assert files_of(copy) == written and Path(copy).name == "store.zarr"
        assert Path(manifest_location(copy)).read_text() == "{}"
        ad.read_zarr(copy)  # anndata reads it as the job wrote it
    assert not Path(copy).exists() and not list(path.parent.iterdir())


def test_a_workflow_store_published_before_the_run_s_bucket_exists_makes_it(s3, fetched, tmp_path):
    """A store's job can end before Snakemake uploads any other file of the run: the bucket
    is made then, as Snakemake's storage makes it."""
    import s3fs

    bucket = bucket_of_storage_settings(
        "s3://a-new-bucket",
        endpoint_url=s3,
        region=REGION,
        access_key="testing",
        secret_key="testing",
    )
    path = tmp_path / "store.zarr"
    rechunk_store(fetched, path, 200)
    written = files_of(path)
    fs = s3fs.S3FileSystem(**s3_options(s3))
    assert not fs.exists("a-new-bucket")
    WorkflowStore(str(path), bucket.url("run/store.zarr"), bucket).publish()
    keys = {k.removeprefix("a-new-bucket/run/store.zarr/") for k in fs.find("a-new-bucket")}
    assert keys == set(written)


def test_a_local_workflow_store_is_read_and_kept_where_it_was_written(fetched, tmp_path):
    path = tmp_path / "store.zarr"
    rechunk_store(fetched, path, 200)
    store = WorkflowStore(str(path))
    store.publish()
    with store.local_copy() as copy:
        assert copy == str(path) and store.where == str(path) and store.in_bucket is None
    assert path.is_dir()
    assert store_in(tmp_path / "store.objects.json", None) == store
