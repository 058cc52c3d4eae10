"""Remote reads over an emulated network (latency, bandwidth) and over S3 (moto), on loopback:
what each costs in requests, bytes and seconds, and that the data stay the same."""

from __future__ import annotations

import time
from dataclasses import replace

import dask
import numpy as np
import pytest
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import RemoteSettings, open_remote_group, read_dask_backed
from chunkatlas.study import OBJECT_STORE, Network, nginx_serving, peak_in_flight
from chunkatlas.study import _http as serve
from chunkatlas.study._measure import measure_store
from chunkatlas.study._reads import read_pattern
from chunkatlas.study._request_log import RequestLog
from chunkatlas.study._serving import served

from ..support.remote import FAST, local_x

pytestmark = pytest.mark.servers

TRAFFIC = ["pattern", "cells", "genes", "requests", "bytes"]
# One request at a time: dask's synchronous scheduler, zarr one request per call, s3fs no
# concurrent ranges (and so no HEAD before each GET).
SEQUENTIAL = {"scheduler": "synchronous", "zarr": 1, "s3fs": {"max_concurrency": 1}}
DEFAULT = {"scheduler": "threads", "zarr": zarr.config.get("async.concurrency"), "s3fs": {}}


def timed_read(store, tmp_path, backend, network, pattern="all_x", mode=DEFAULT, server="aiohttp"):
    """Serve ``store`` over ``network``, read ``pattern`` from X; return (seconds, the log's
    entries for that read alone)."""
    log_path = tmp_path / "requests.jsonl"
    log_path.touch()
    with (
        served(backend, store, log_path, server, network) as (url, base_url, options),
        zarr.config.set({"async.concurrency": mode["zarr"]}),
        dask.config.set(scheduler=mode["scheduler"]),
    ):
        storage_options = {**options, **mode["s3fs"]} if options else {}
        group, _ = open_remote_group(url, replace(FAST, storage_options=storage_options))
        x = group["X"]  # the study's reader: planned per array
        log = RequestLog(log_path, base_url)
        log.mark()
        start = time.perf_counter()
        read_pattern(pattern, x)
        seconds = time.perf_counter() - start
        return seconds, log.mark()


def test_network_values_are_checked(consolidated, monkeypatch):
    for bad, name in [
        (dict(latency_ms=-1), "latency_ms"),
        (dict(latency_ms=float("nan")), "latency_ms"),
        (dict(bandwidth_mbps=0), "bandwidth_mbps"),
    ]:
        with pytest.raises(ChunkatlasError, match=rf"^network {name} must be .*, got") as err:
            Network(**bad)
        assert "\n" not in str(err.value)
    store, _ = consolidated
    with pytest.raises(ChunkatlasError, match="backend 'ftp' is not one of 'http', 's3'"):
        measure_store(store, backend="ftp")
    monkeypatch.setattr(serve, "ECHO_MODULE", serve.Path("/nonexistent/echo.so"))
    with (
        pytest.raises(ChunkatlasError, match=r"nginx cannot add latency \(30 ms\) without"),
        nginx_serving(store.parent, "unused.jsonl", network=OBJECT_STORE),
    ):
        pass


def test_peak_in_flight_counts_overlapping_requests():
    def entry(start, end):
        return {"end": end, "seconds": end - start}

    assert peak_in_flight([]) == 0
    assert peak_in_flight([entry(0, 1), entry(1, 2), entry(2, 3)]) == 1  # touching: in turn
    assert peak_in_flight([entry(0, 3), entry(1, 2), entry(1.5, 4), entry(3.5, 5)]) == 3


def test_s3_counts_what_http_counts(consolidated):
    """The reader asks S3 for each whole object in one GET: S3 costs exactly what HTTP does.
    With s3fs's own default (objects above 50 MB split into concurrent ranges) a HEAD (no
    body) comes before each GET."""
    store, _ = consolidated
    http = measure_store(store, repeats=1)
    s3 = measure_store(store, backend="s3", repeats=1)
    assert (s3["backend"] == "s3").all() and (s3["server"] == "moto").all()
    assert s3[TRAFFIC].equals(http[TRAFFIC])
    splitting = RemoteSettings(storage_options={"max_concurrency": 10})
    s3_split = measure_store(store, backend="s3", settings=splitting, repeats=1)
    assert s3_split["bytes"].tolist() == http["bytes"].tolist()
    assert s3_split["requests"].tolist() == [2 * n for n in http["requests"]]


@pytest.mark.parametrize("backend", ["http", "s3"])
def test_sequential_reads_have_one_request_in_flight(consolidated, tmp_path, backend):
    """The reader's concurrency is what the settings make it: one request at a time here.
    (What latency and bandwidth cost in seconds is measured in benchmarks/network.py.)"""
    store, _ = consolidated
    _, entries = timed_read(store, tmp_path, backend, Network(latency_ms=5), mode=SEQUENTIAL)
    assert len(entries) > 10
    assert peak_in_flight(entries) == 1


@pytest.mark.parametrize("server", ["aiohttp", "nginx", "moto"])
def test_data_over_an_emulated_network_are_identical(each_format, tmp_path, server):
    store, _ = each_format
    backend = "s3" if server == "moto" else "http"
    log_path = tmp_path / "requests.jsonl"
    log_path.touch()
    with served(backend, store, log_path, server, OBJECT_STORE) as (url, _, options):
        group, _ = open_remote_group(url, replace(FAST, storage_options=options))
        remote = read_dask_backed(group, 200).X.compute()
    remote = remote.toarray() if hasattr(remote, "toarray") else np.asarray(remote)
    np.testing.assert_array_equal(remote, local_x(store))
