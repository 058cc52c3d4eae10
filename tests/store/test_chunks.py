"""Checked reads (chunkatlas.store._chunks): the data, or one line naming the store, the array
and the chunk or shard that cannot be decoded."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import read_checked
from chunkatlas.store._chunks import chunks_under, object_noun, read_span, sequential_reads

from ..support.stores import chunk_key


def spoil(path) -> None:
    """Replace a stored object with bytes no codec decodes, of the same length."""
    size = path.stat().st_size
    path.write_bytes((b"not a chunk " * (size // 12 + 1))[:size])


def test_an_intact_read_is_the_array_data(small, small_store):
    group = zarr.open_group(small_store, mode="r")
    dense = read_checked(group["layers/dense"], (slice(10, 40), slice(2, 9)), small_store)
    np.testing.assert_array_equal(dense, small.layers["dense"][10:40, 2:9])
    data = read_checked(group["X/data"], (slice(None),), small_store)
    np.testing.assert_array_equal(data, small.X.data)


def test_a_chunk_that_cannot_be_decoded_is_named(small, store_copy):
    key = chunk_key(store_copy, "layers/dense", 1, 0)
    spoil(store_copy / "layers" / "dense" / key)
    dense = zarr.open_group(store_copy, mode="r")["layers/dense"]
    with pytest.raises(ChunkatlasError) as caught:
        read_checked(dense, (slice(0, 60), slice(None)), "where.zarr")
    message = str(caught.value)
    assert message.startswith(f"store where.zarr: chunk 'layers/dense/{key}' cannot be decoded")
    assert "\n" not in message
    # the chunks around it still read
    np.testing.assert_array_equal(
        read_checked(dense, (slice(0, 25), slice(None)), "where.zarr"), small.layers["dense"][:25]
    )


def test_a_damaged_shard_is_named_as_a_shard(tmp_path):
    array = zarr.create_array(
        tmp_path / "s.zarr", shape=(40,), chunks=(5,), shards=(10,), dtype="i4", name="counts"
    )
    array[:] = np.arange(40)
    shard = tmp_path / "s.zarr" / "counts" / "c" / "2"
    shard.write_bytes(shard.read_bytes()[:-6])  # its index, at the end, cut short
    array = zarr.open_group(tmp_path / "s.zarr", mode="r")["counts"]
    with pytest.raises(ChunkatlasError, match=r"^store s: shard 'counts/c/2' cannot be decoded"):
        read_checked(array, (slice(None),), "s")
    assert read_checked(array, (slice(0, 20),), "s").tolist() == list(range(20))


def test_shards_are_named_shards_only_when_they_hold_several_chunks():
    assert object_noun(None, (5,)) == "chunk"
    assert object_noun((10,), (10,)) == "chunk"
    assert object_noun((10, 4), (5, 4)) == "shard"


def test_the_chunks_under_a_selection(tmp_path):
    array = zarr.create_array(tmp_path / "a.zarr", shape=(25, 6), chunks=(10, 4), dtype="i4")
    assert list(chunks_under(array, (slice(5, 21), slice(None)))) == [
        (r, c) for r in (0, 1, 2) for c in (0, 1)
    ]
    assert list(chunks_under(array, (slice(10, 20),))) == [(1, 0), (1, 1)]
    assert list(chunks_under(array, (slice(3, 3), slice(None)))) == []


class CountingStore(zarr.storage.WrapperStore):
    """A local store that counts the reads of each chunk key."""

    def __init__(self, store) -> None:
        super().__init__(store)
        self.reads: dict[str, int] = {}

    async def get(self, key, prototype, byte_range=None):
        if "/c/" in key or key.startswith("c/"):
            self.reads[key] = self.reads.get(key, 0) + 1
        return await super().get(key, prototype, byte_range)


@pytest.mark.parametrize("shards", [None, (400,)])
def test_spans_read_in_order_decode_each_chunk_once(tmp_path, shards):
    values = np.arange(1_000, dtype=np.int64) * 3
    zarr.create_array(tmp_path / "a.zarr", data=values, chunks=(100,), shards=shards)
    counted = CountingStore(zarr.storage.LocalStore(tmp_path / "a.zarr", read_only=True))
    array = zarr.open_array(counted, mode="r")
    edges = [0, 37, 150, 151, 380, 620, 999, 1_000]  # blocks straddling chunks, as writers read
    with sequential_reads():
        for low, high in itertools.pairwise(edges):
            np.testing.assert_array_equal(read_span(array, low, high, "a"), values[low:high])
    if shards is None:  # unsharded: each chunk one object, read once
        assert sorted(counted.reads.values()) == [1] * 10
    # out of order, or outside the block: the same values, the chunk read again
    before = sum(counted.reads.values())
    with sequential_reads():
        for low, high in [(500, 560), (120, 130), (120, 990), (990, 1_000), (0, 0)]:
            np.testing.assert_array_equal(read_span(array, low, high, "a"), values[low:high])
    np.testing.assert_array_equal(read_span(array, 5, 905, "a"), values[5:905])
    assert sum(counted.reads.values()) > before
