"""The cost model's terms: decode per chunk and per byte recovered from decode passes, round
trips and responses in flight by reader, and a user's read at a random place."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from chunkatlas.model import Atlas, Encoding, Layout, predict_traffic
from chunkatlas.model._reader import READERS, read_features
from chunkatlas.model._traffic import fit_decode, x_chunks

ATLAS = Atlas(1_000_000, 20_000, 1_000_000_000)
PER_CHUNK = 0.004  # seconds
PER_BYTE = {
    ("cells", "packed"): 1 / 150e6,
    ("cells", "zstd"): 1 / 40e6,
    ("genes", "packed"): 1 / 90e6,
}
BYTES_PER_VALUE = {"packed": 1.1, "zstd": 1.9}


def decode_passes() -> pd.DataFrame:
    rows = []
    for (orientation, codec), per_byte in PER_BYTE.items():
        chunks = (2_000, 10_000, 50_000) if orientation == "cells" else (20, 200, 1_000)
        for chunk in chunks:
            layout = Layout(orientation, chunk, 1, codec)
            x_bytes = ATLAS.nnz * BYTES_PER_VALUE[codec]
            seconds = x_chunks(ATLAS, layout) * PER_CHUNK + x_bytes * per_byte
            rows.append(
                dict(orientation=orientation, codec=codec, chunk=chunk, shard=1)
                | dict(n_obs=ATLAS.n_obs, n_vars=ATLAS.n_vars, nnz=ATLAS.nnz)
                | dict(x_bytes=x_bytes, decode_seconds=seconds)
            )
    return pd.DataFrame(rows)


def test_the_decode_fit_recovers_a_time_per_chunk_and_a_rate_per_codec():
    per_chunk, per_byte = fit_decode(decode_passes())
    assert per_chunk == pytest.approx(PER_CHUNK, rel=1e-3)
    assert per_byte.keys() == PER_BYTE.keys()
    for kind, expected in PER_BYTE.items():
        assert per_byte[kind] == pytest.approx(expected, rel=1e-3)
    encoding = Encoding(1.1, 1.0, per_byte[("cells", "packed")], per_chunk)
    assert encoding.describe().startswith("150 MB/s + 4 ms per chunk")


def test_one_chunk_size_per_codec_leaves_no_time_per_chunk():
    one_each = decode_passes().groupby(["orientation", "codec"]).head(1)
    per_chunk, per_byte = fit_decode(one_each)
    assert per_chunk == 0.0
    assert set(per_byte) == set(PER_BYTE)


def reads(**columns) -> pd.DataFrame:
    return pd.DataFrame({k: list(v) for k, v in columns.items()})


def test_round_trips_follow_the_readers_concurrency_and_its_arrays_one_after_another():
    table = reads(pattern=["all_x", "all_x", "cell_block", "open"], requests=[300, 30, 3, 40])
    table["bytes"] = [300e6, 30e6, 3e6, 4e6]
    rounds, stream, selected = read_features(table, READERS["anndata"]).T
    # 300 requests: three arrays of 100, ten in flight: 3 x 10 round trips
    # open: obs and var arrays one after another (18 of them), each its chunks side by side
    assert rounds.tolist() == [30, 3, 3, 18]
    assert stream[0] == pytest.approx(300e6 / 10)  # ten responses streaming at once
    assert stream[2] == pytest.approx(3e6)  # one request per array: one response at a time
    assert stream[3] == pytest.approx(4e6 / (40 / 18))
    assert selected.tolist() == [0, 0, 0, 0]  # no read across the grain of a cell-major store
    across = reads(pattern=["one_gene"], orientation=["cells"], requests=[30], bytes=[8e6])
    assert read_features(across, READERS["anndata"])[0, 2] == 8e6
    assert read_features(across, READERS["chunkatlas"])[0, 2] == 0
    # 10 MB objects: anndata streams each in one response, chunkatlas in five 2 MiB ranges
    big = reads(pattern=["all_x"], requests=[30], bytes=[300e6])
    assert read_features(big, READERS["anndata"])[0, 1] == pytest.approx(300e6 / 10)
    assert read_features(big, READERS["chunkatlas"])[0, 1] == pytest.approx(300e6 / 50)


def test_a_few_huge_objects_cost_anndata_more_than_many_moderate_ones():
    """The same bytes in 3 objects (one per array) or in 300: one response each at a time."""
    few = reads(pattern=["all_x"], requests=[3], bytes=[3e9])
    many = reads(pattern=["all_x"], requests=[300], bytes=[3e9])
    few_rounds, few_stream, _ = read_features(few, READERS["anndata"])[0]
    many_rounds, many_stream, _ = read_features(many, READERS["anndata"])[0]
    per_round, per_byte = 0.03, 1 / 20e6
    assert few_rounds * per_round + few_stream * per_byte > 5 * (
        many_rounds * per_round + many_stream * per_byte
    )


def test_a_users_block_at_a_random_place_straddles_chunks_on_average():
    encoding = Encoding(1.0, 1.0, 1e-8)
    atlas = Atlas(100_000, 2_000, 100_000_000)  # 1,000 values per cell
    block = predict_traffic(atlas, Layout("cells", 1_000, 1, "packed"), "cell_block", encoding)
    # 1,000 cells of 1,000-cell chunks: one chunk if aligned, two otherwise; for each of data,
    # indices and indptr
    assert 3 < block.requests <= 6
    aligned = predict_traffic(
        atlas,
        Layout("cells", 1_000, 1, "packed"),
        "cell_block",
        encoding,
        ranges=([(0, 1_001)], [(0, 1_000_000)]),
    )
    assert aligned.requests == 3  # one chunk of data, indices and indptr each
    assert isinstance(aligned.requests, int)
    gene = predict_traffic(atlas, Layout("genes", 20, 1, "packed"), "one_gene", encoding)
    per_gene = atlas.nnz / atlas.n_vars
    chunk_values = math.ceil(per_gene * 20)
    # a gene of 50,000 values in chunks of 1,000,000: 1 + 50,000 / 1,000,000 chunks expected
    assert gene.requests == pytest.approx(2 * (1 + per_gene / chunk_values) + 1, abs=0.2)


def test_chunks_of_a_shard_close_together_come_in_one_request_as_zarr_reads_them():
    from chunkatlas.model._traffic import _array_reads

    # chunks 0 and 3 of one 16-chunk shard: 2 chunks between them
    wanted = [(0, 10), (30, 40)]
    small = _array_reads(160, 10, 16, wanted, grows=True, chunk_bytes=100_000)
    assert small[:3] == (2, 4, 1)  # the index, then chunks 0-3 in one request (gap 200 kB)
    large = _array_reads(160, 10, 16, wanted, grows=True, chunk_bytes=2_000_000)
    assert large[:3] == (3, 2, 1)  # a 4 MB gap: the index and two requests
    unsized = _array_reads(160, 10, 16, wanted, grows=True)
    assert unsized[:3] == (3, 2, 1)


def test_a_part_of_a_shard_costs_a_round_trip_more_per_array():
    one = reads(pattern=["one_gene"], orientation=["genes"], requests=[5], bytes=[1e6])
    plain, sharded = (
        read_features(one.assign(shard=shard), READERS["anndata"])[0, 0] for shard in (1, 64)
    )
    assert sharded == plain + 3  # indptr, data, indices: each its index first


def test_the_requests_of_one_shard_come_one_after_another_and_shards_side_by_side():
    from chunkatlas.model._traffic import _array_reads

    # a whole array in its one shard, not full (15 of 16 chunks), of 20 MB chunks: its index,
    # then one request per chunk (over zarr's 16 MiB a request), all from one object
    requests, _, indexes, _, objects_read = _array_reads(
        150, 10, 16, [(0, 150)], grows=True, chunk_bytes=20e6
    )
    assert (requests, indexes, objects_read) == (16, 1, 1)
    # the same array unsharded: one object per request
    assert _array_reads(150, 10, 1, [(0, 150)], grows=True)[::4] == (15, 15)

    one_shard = reads(pattern=["all_x"], requests=[48], bytes=[300e6]).assign(shard=16)
    rounds, streamed, _ = read_features(one_shard.assign(objects_read=3), READERS["anndata"])[0]
    assert streamed == 300e6  # one response at a time: each array's shard in turn
    assert rounds == 48
    rounds, streamed, _ = read_features(one_shard.assign(objects_read=48), READERS["anndata"])[0]
    assert streamed == 300e6 / 10 and rounds == 3 * 2  # 16 objects per array, 10 in flight


def test_a_whole_x_in_one_shard_per_array_is_read_from_three_objects():
    atlas = Atlas(150_000, 40_000, 243_000_000)
    encoding = Encoding(1.1, 1.2, 1e-8)
    whole = predict_traffic(atlas, Layout("cells", 10_000, 16, "packed"), "all_x", encoding)
    assert whole.objects_read == 3 and whole.requests > 3 * 4
    unsharded = predict_traffic(atlas, Layout("cells", 10_000, 1, "packed"), "all_x", encoding)
    assert unsharded.objects_read == unsharded.requests == 31


def test_a_users_block_in_a_sharded_store_straddles_chunks_as_often_as_in_an_unsharded_one():
    encoding = Encoding(1.0, 1.0, 1e-8)
    atlas = Atlas(100_000, 2_000, 100_000_000)
    plain, sharded = (
        predict_traffic(atlas, Layout("cells", 1_000, shard, "packed"), "cell_block", encoding)
        for shard in (1, 16)
    )
    assert sharded.bytes == pytest.approx(plain.bytes, rel=0.01)  # two chunks, 7 times in 8
    assert plain.bytes > 1.5 * 1_000_000  # a chunk of data and indices is 1 MB: more than one
