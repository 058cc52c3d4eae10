"""The guarded reader (chunkatlas.store._guarded) over a local store: every chunk the manifest
lists arrives whole and unaltered, or is retried and then named in one line, never read as
zeros; and the rules it reads by (errors sorted, lengths and CRC-32C checked, fsspec options).

Reads over real HTTP servers on loopback: tests/store/test_remote_reads.py."""

from __future__ import annotations

import aiohttp
import google_crc32c
import numpy as np
import pytest
import zarr
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import Reads, RemoteSettings, build_manifest, storage_options_for, take_reads
from chunkatlas.store._guarded import (
    GuardedStore,
    classify,
    crc32c_problem,
    sealed_keys,
    wanted_length,
)

from ..support.stores import chunk_key

URL = "http://reader:pa55word@host/store.zarr"  # named in messages only: the store is local
TWICE = RemoteSettings(attempts=2, backoff_seconds=0.001)


def guarded_store(store, manifest: dict) -> GuardedStore:
    expected = {
        f"{array['path']}/{key}": entry
        for array in manifest["arrays"]
        for key, entry in array["chunk_files"].items()
    }
    return GuardedStore(LocalStore(store, read_only=True), expected, URL, TWICE)


def guarded_group(store, manifest: dict) -> zarr.Group:
    return zarr.open_consolidated(
        guarded_store(store, manifest), mode="r", zarr_format=manifest["zarr_format"]
    )


def refusal(read) -> str:
    with pytest.raises(ChunkatlasError) as caught:
        read()
    message = str(caught.value)
    assert "\n" not in message and "pa55word" not in message and "http://***@host" in message
    return message


def test_an_intact_store_reads_as_it_is(small, small_store):
    group = guarded_group(small_store, build_manifest(small_store))
    np.testing.assert_array_equal(group["X/data"][:], small.X.data)
    np.testing.assert_array_equal(group["layers/dense"][:], small.layers["dense"])


def test_an_altered_chunk_is_read_again_then_named(store_copy):
    group = guarded_group(store_copy, build_manifest(store_copy))
    key = f"X/data/{chunk_key(store_copy, 'X/data', 1)}"
    data = bytearray((store_copy / key).read_bytes())
    data[-1] ^= 0x01
    (store_copy / key).write_bytes(bytes(data))
    take_reads()
    message = refusal(lambda: group["X/data"][50:100])
    assert message == (
        f"reading chunk '{key}' of http://***@host/store.zarr failed after 2 attempt(s) within "
        "30 s: checksum differs from the manifest"
    )
    # both attempts counted: a request each, the second a retry, the bytes of each
    assert take_reads()[1] == Reads(requests=2, bytes=2 * len(data), retries=1)


def test_a_lost_chunk_is_an_error_not_zeros(store_copy):
    group = guarded_group(store_copy, build_manifest(store_copy))
    key = f"layers/dense/{chunk_key(store_copy, 'layers/dense', 1, 0)}"
    (store_copy / key).unlink()
    message = refusal(lambda: group["layers/dense"][:])
    assert message.startswith(f"reading chunk '{key}' of http://***@host/store.zarr failed")
    assert message.endswith(": missing, but the manifest lists it")


def test_a_truncated_chunk_is_named_with_both_sizes(store_copy):
    group = guarded_group(store_copy, build_manifest(store_copy))
    key = f"X/indices/{chunk_key(store_copy, 'X/indices', 0)}"
    size = (store_copy / key).stat().st_size
    (store_copy / key).write_bytes((store_copy / key).read_bytes()[:-2])
    message = refusal(lambda: group["X/indices"][:10])
    assert message.endswith(f": got {size - 2} bytes, the manifest says {size}")


def test_a_short_answer_to_a_range_is_an_error(small_store):
    guarded = guarded_store(small_store, build_manifest(small_store))
    key = f"X/data/{chunk_key(small_store, 'X/data', 0)}"
    size = (small_store / key).stat().st_size
    prototype = default_buffer_prototype()
    whole = sync(guarded.get(key, prototype, RangeByteRequest(0, size)))
    assert whole.to_bytes() == (small_store / key).read_bytes()
    past_the_end = RangeByteRequest(size - 3, size + 7)  # the file gives 3 bytes, not 10
    message = refusal(lambda: sync(guarded.get(key, prototype, past_the_end)))
    assert message.endswith(": asked 10 bytes, got 3")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (PermissionError("denied"), "credentials"),
        (aiohttp.ClientResponseError(None, (), status=401), "credentials"),
        (aiohttp.ClientResponseError(None, (), status=403), "credentials"),
        (aiohttp.ClientResponseError(None, (), status=503), "transient"),
        (aiohttp.ClientResponseError(None, (), status=429), "transient"),
        (aiohttp.ClientResponseError(None, (), status=408), "transient"),
        (aiohttp.ClientResponseError(None, (), status=404), "fatal"),
        (aiohttp.ClientResponseError(None, (), status=400), "fatal"),
        (TimeoutError(), "transient"),
        (ConnectionResetError(), "transient"),
        (aiohttp.ServerDisconnectedError(), "transient"),
        (ValueError("bad"), "fatal"),
        (KeyError("X"), "fatal"),
    ],
    ids=lambda value: value if isinstance(value, str) else type(value).__name__,
)
def test_errors_are_sorted_into_credentials_transient_and_fatal(error, kind):
    assert classify(error) == kind


def test_the_length_a_ranged_read_must_have():
    assert wanted_length(RangeByteRequest(5, 15), None) == 10
    assert wanted_length(SuffixByteRequest(4), 10) == 4
    assert wanted_length(SuffixByteRequest(40), 10) == 10
    assert wanted_length(OffsetByteRequest(3), 10) == 7
    assert wanted_length(OffsetByteRequest(12), 10) == 0
    assert wanted_length(SuffixByteRequest(4), None) is None  # unknown without the size
    assert wanted_length(None, 10) is None


def test_bytes_that_end_in_their_crc32c():
    body = b"inner chunk bytes"
    sealed = body + google_crc32c.value(body).to_bytes(4, "little")
    assert crc32c_problem(sealed) == ""
    assert crc32c_problem(b"X" + sealed[1:]) == "fails its CRC-32C (damaged in storage or transit)"
    assert crc32c_problem(b"abc") == "3 bytes cannot hold a CRC-32C"


def test_sealed_shards_are_those_of_sharded_arrays_ending_in_crc32c():
    crc = '{"name": "crc32c"}'
    manifest = {
        "arrays": [
            {
                "path": "X/data",
                "shards": [400],
                "compressors": ['{"name": "zstd"}', crc],
                "chunk_files": {"c/0": [1, "a"], "c/1": [1, "b"]},
            },
            {
                "path": "X/indptr",
                "shards": None,
                "compressors": [crc],
                "chunk_files": {"c/0": [1, "c"]},
            },
            {
                "path": "layers/x",
                "shards": [400],
                "compressors": ['{"name": "zstd"}'],
                "chunk_files": {"c/0": [1, "d"]},
            },
            {
                "path": "obs/_index",
                "shards": [10],
                "compressors": [],
                "chunk_files": {"c/0": [1, "e"]},
            },
        ]
    }
    assert sealed_keys(manifest) == {"X/data/c/0", "X/data/c/1"}


def test_http_reads_get_the_deadline_and_s3_one_get_per_object():
    settings = RemoteSettings(timeout_seconds=7, storage_options={"client_kwargs": {"a": 1}})
    http = storage_options_for("https://host/x.zarr", settings)
    assert http["client_kwargs"]["a"] == 1
    assert http["client_kwargs"]["timeout"] == aiohttp.ClientTimeout(total=7)
    assert settings.storage_options == {"client_kwargs": {"a": 1}}  # the settings unchanged
    assert storage_options_for("s3://b/x.zarr", RemoteSettings()) == {"max_concurrency": 1}
    mine = RemoteSettings(storage_options={"max_concurrency": 4, "anon": True})
    assert storage_options_for("s3://b/x.zarr", mine) == {"max_concurrency": 4, "anon": True}
