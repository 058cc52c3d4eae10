"""Remote reads over real HTTP servers on loopback through the guarded reader: retries, and
never zeros for a failed read; credentials refused at once and masked; no store without its
manifest."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zarr
from zarr.abc.store import RangeByteRequest
from zarr.core.buffer import default_buffer_prototype

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import RemoteSettings, open_remote_group
from chunkatlas.store._guarded import CredentialsRefused
from chunkatlas.study._http import aiohttp_serving

from ..support.faulty_server import Faults, faulty_serving
from ..support.remote import FAST, local_x, read_remote_x
from ..support.stores import chunk_key


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


#: Small parts, so the test stores' chunks arrive in several ranges each.
IN_PARTS = RemoteSettings(attempts=6, backoff_seconds=0.01, timeout_seconds=20, part_bytes=700)


def test_objects_larger_than_a_part_arrive_as_ranges_joined_and_checked(each_format, tmp_path):
    store, manifest = each_format
    log_path = tmp_path / "log.jsonl"
    with aiohttp_serving(store.parent, log_path) as url:
        np.testing.assert_array_equal(read_remote_x(f"{url}/store.zarr", IN_PARTS), local_x(store))
    sizes = {
        f"/store.zarr/{array['path']}/{key}": size
        for array in json.loads(manifest.read_text())["arrays"]
        for key, (size, _) in array["chunk_files"].items()
    }
    log = [json.loads(line) for line in log_path.read_text().splitlines()]
    large = {path: size for path, size in sizes.items() if size > 700}
    read_large = [e for e in log if e["path"] in large]
    assert large and read_large
    for path in {e["path"] for e in read_large}:
        ranges = [e for e in read_large if e["path"] == path]
        assert all(e["range"] and e["status"] == 206 for e in ranges)
        assert len({e["range"] for e in ranges}) == -(-large[path] // 700)  # a request a part
        assert sum(e["bytes"] for e in ranges) % large[path] == 0  # each read whole


def test_a_part_that_fails_or_is_missing_once_is_retried_never_read_as_zeros(each_format, tmp_path):
    store, _ = each_format
    path = f"/store.zarr/X/data/{chunk_key(store, 'X/data', 1)}"
    faults = Faults(fail_rate=0.2, missing_once={path}, seed=7)
    with faulty_serving(store.parent, tmp_path / "log.jsonl", faults) as url:
        remote = read_remote_x(f"{url}/store.zarr", IN_PARTS)
    np.testing.assert_array_equal(remote, local_x(store))
    log = (tmp_path / "log.jsonl").read_text().splitlines()
    statuses = [json.loads(line)["status"] for line in log]
    assert 404 in statuses and 503 in statuses


def test_short_answers_to_a_parts_range_are_an_error_naming_the_chunk(each_format, tmp_path):
    store, _ = each_format
    settings = RemoteSettings(attempts=2, backoff_seconds=0.01, timeout_seconds=20, part_bytes=700)
    with (
        faulty_serving(store.parent, tmp_path / "log.jsonl", Faults(bad_range="short")) as url,
        pytest.raises(ChunkatlasError, match=r"chunk '.*' .* 2 attempt\(s\).* asked \d+ bytes,"),
    ):
        read_remote_x(f"{url}/store.zarr", settings)
