"""Counting reads (chunkatlas.store._counting): one request per object read, its bytes as stored,
per process, started again at each take."""

from __future__ import annotations

import os

import numpy as np
import zarr
from zarr.storage import LocalStore

from chunkatlas.store import Reads, open_anndata_group, take_reads
from chunkatlas.store._counting import CountedStore

from ..support.stores import chunk_key


def stored_size(store, array: str, *index: int) -> int:
    return (store / array / chunk_key(store, array, *index)).stat().st_size


def test_reads_add_up_field_by_field():
    assert Reads(1, 2, 3) + Reads(10, 20, 30) == Reads(11, 22, 33)
    assert Reads(4, 5, 6).asdict() == {"requests": 4, "bytes": 5, "retries": 6}
    assert Reads().astuple() == (0, 0, 0)


def test_each_chunk_read_is_one_request_of_its_stored_bytes(small, small_store):
    data = zarr.open_array(CountedStore(LocalStore(small_store / "X" / "data", read_only=True)))
    take_reads()  # what opening the array read, and anything before it
    np.testing.assert_array_equal(data[:50], small.X.data[:50])  # the first chunk exactly
    pid, reads = take_reads()
    assert pid == os.getpid()
    assert reads == Reads(requests=1, bytes=stored_size(small_store, "X/data", 0))
    data[40:60]  # across the first two chunks
    n_chunks = -(-small.X.nnz // 50)
    assert take_reads()[1] == Reads(
        requests=2, bytes=sum(stored_size(small_store, "X/data", i) for i in (0, 1))
    )
    data[:]
    assert take_reads()[1] == Reads(
        requests=n_chunks,
        bytes=sum(stored_size(small_store, "X/data", i) for i in range(n_chunks)),
    )
    assert take_reads()[1] == Reads()  # taking starts the count again


def test_a_chunk_never_written_is_a_request_of_no_bytes(tmp_path):
    array = zarr.create_array(tmp_path / "a.zarr", shape=(20,), chunks=(10,), dtype="i4")
    array[:10] = 7  # the second chunk stays unwritten: the fill value
    counted = zarr.open_array(CountedStore(LocalStore(tmp_path / "a.zarr", read_only=True)))
    take_reads()
    assert counted[10:].tolist() == [0] * 10
    assert take_reads()[1] == Reads(requests=1, bytes=0)


def test_stores_opened_by_chunkatlas_are_counted(small_store):
    group = open_anndata_group(small_store)
    take_reads()
    group["layers/dense"][25:50]  # the second chunk of rows
    assert take_reads()[1] == Reads(
        requests=1, bytes=stored_size(small_store, "layers/dense", 1, 0)
    )
