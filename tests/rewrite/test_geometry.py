"""Store geometry: chunks x shards x codec presets give the same data and results, fewer objects
with shards, fewer bytes with ``packed``; damage to a shard is found, locally and over HTTP."""

from __future__ import annotations

import json
import shutil
from functools import partial

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import zarr
from anndata.io import write_elem
from zarr.codecs import Crc32cCodec, ShardingCodec, ZstdCodec

from chunkatlas.analysis import AnalysisParams, analyze_store
from chunkatlas.errors import ChunkatlasError
from chunkatlas.ingest._cell_totals import row_totals
from chunkatlas.rewrite import (
    CODECS,
    _geometry,
    consolidate_store,
    decode_pass_seconds,
    rechunk_store,
)
from chunkatlas.rewrite._geometry import index_cast, integer_cast
from chunkatlas.store import RemoteSettings, read_dask_backed, verify_store
from chunkatlas.study._http import aiohttp_serving

from ..support.faulty_server import Faults, faulty_serving
from ..support.remote import local_x, read_remote_x
from ..support.stores import chunk_key

SIZE, SHARD = 100, 4


def geometry_store(source, where, *, shard=1, codec="zstd", size=SIZE):
    store, manifest = where / "store.zarr", where / "store.manifest.json"
    rechunk_store(source, store, size, shard=shard, codec=codec)
    return store, consolidate_store(store, manifest)


@pytest.fixture(scope="module")
def sharded(fetched, tmp_path_factory) -> tuple:
    """The fetched tissue, 100 cells a chunk, 4 chunks a shard, ``packed``: (store, manifest)."""
    return geometry_store(fetched, tmp_path_factory.mktemp("sharded"), shard=SHARD, codec="packed")


@pytest.fixture(scope="module")
def unsharded(fetched, tmp_path_factory) -> tuple:
    return geometry_store(fetched, tmp_path_factory.mktemp("unsharded"))


def varied_anndata() -> ad.AnnData:
    """Counts in X and a sparse layer, a dense layer that is not counts, a sparse layer of
    counts too large for 16 bits, and obs and var columns of each kind anndata writes; enough
    cells for obs columns of five chunks of 1,000 rows."""
    rng = np.random.default_rng(5)
    n = 4_996
    counts = sp.random(n, 70, density=0.05, format="csr", dtype=np.float32, rng=rng)
    counts.data = np.ceil(counts.data * 300)
    large = counts.copy()
    large.data[0] = 70_000
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(rng.choice(["t", "b", "nk"], n)),
            "donor": rng.choice(["d1", "d2"], n).astype(object),
            "qc": rng.random(n) > 0.5,
            "n_genes": pd.array(rng.integers(0, 50, n), dtype="Int64"),
            "score": rng.normal(size=n),
        },
        index=[f"cell{i}" for i in range(n)],
    )
    var = pd.DataFrame(
        {"symbol": [f"G{i}" for i in range(70)], "length": rng.integers(100, 9000, 70)},
        index=[f"ENSG{i:05d}" for i in range(70)],
    )
    return ad.AnnData(
        X=counts,
        obs=obs,
        var=var,
        layers={"counts": counts.copy(), "scaled": counts.toarray() / 7, "large": large},
    )


@pytest.fixture(scope="module")
def varied_source(tmp_path_factory):
    source = tmp_path_factory.mktemp("varied") / "source.zarr"
    write_elem(zarr.open_group(source, mode="w", zarr_format=3), "/", varied_anndata())
    return source


def assert_same_anndata(got: ad.AnnData, expected: ad.AnnData) -> None:
    for name, matrix in [("X", expected.X), *expected.layers.items()]:
        back = got.X if name == "X" else got.layers[name]
        dense = matrix.toarray() if sp.issparse(matrix) else matrix
        np.testing.assert_array_equal(back.toarray() if sp.issparse(back) else back, dense)
        assert back.dtype == matrix.dtype, name
    raw_sum, nnz = row_totals(expected.X)  # what rechunking adds to obs
    pd.testing.assert_frame_equal(got.obs, expected.obs.assign(raw_sum=raw_sum, nnz=nnz))
    pd.testing.assert_frame_equal(got.var, expected.var)


OBS_AND_VAR_ARRAYS = ("obs/_index", "obs/cell_type/codes", "obs/n_genes/values", "obs/qc")
OBS_AND_VAR_ARRAYS += ("obs/nnz", "var/symbol", "var/_index")


def stored_objects(array_folder) -> int:
    return sum(1 for path in array_folder.rglob("*") if path.is_file()) - 1  # zarr.json


def test_obs_and_var_arrays_of_many_chunks_are_one_object_each(
    varied_source, tmp_path, monkeypatch
):
    monkeypatch.setattr(_geometry, "COLUMN_ROWS", 1_000)
    store = tmp_path / "out.zarr"
    rechunk_store(varied_source, store, 100)
    assert_same_anndata(ad.read_zarr(store), ad.read_zarr(varied_source))
    group = zarr.open_group(store, mode="r")
    for path in OBS_AND_VAR_ARRAYS:  # obs: 5 chunks in a shard; var: 70 rows in one chunk
        expected = ((1_000,), (5_000,)) if path.startswith("obs") else ((70,), None)
        assert (group[path].chunks, group[path].shards) == expected, path
        assert stored_objects(store / path) == 1, path
    assert stored_objects(store / "X" / "data") > 1


@pytest.mark.parametrize("shard", [1, 3])
@pytest.mark.parametrize("codec", list(CODECS))
def test_every_preset_and_shard_round_trips_exactly(varied_source, tmp_path, codec, shard):
    store = tmp_path / "out.zarr"
    rechunk_store(varied_source, store, 1000, shard=shard, codec=codec)
    assert_same_anndata(ad.read_zarr(store), ad.read_zarr(varied_source))
    group = zarr.open_group(store, mode="r")
    # obs and var arrays (the index, categorical codes, nullable values...) whole, in one
    # chunk, whatever the matrix's chunks and shards
    for path in OBS_AND_VAR_ARRAYS:
        assert group[path].chunks == group[path].shape and group[path].shards is None, path
    assert group["layers/scaled"].chunks == (1000, 70)
    assert group["layers/scaled"].shards == (None if shard == 1 else (3000, 70))
    assert group["X/data"].shards == (None if shard == 1 else (3 * group["X/data"].chunks[0],))
    for path in ("X/data", "X/indices", "layers/scaled", "obs/cell_type/categories"):
        assert isinstance(group[path].compressors[-1], Crc32cCodec), path
    casts = {
        path: [
            f.codec_config["encode_dtype"] for f in group[path].filters if "astype" in f.codec_name
        ]
        for path in ("X/data", "layers/counts/data", "layers/scaled", "layers/large/data")
    }
    if codec == "packed":  # counts up to 300 in two bytes; never a cast that would change values
        assert casts["X/data"] == ["<u2"]
        assert casts["layers/counts/data"] == casts["X/data"]
        assert casts["layers/scaled"] == casts["layers/large/data"] == []
        # gene numbers below 70 in one byte, delta-coded there (wrapping at each row start)
        indices = group["X/indices"]
        assert [f.codec_name for f in indices.filters] == ["numcodecs.astype", "numcodecs.delta"]
        assert indices.filters[0].codec_config["encode_dtype"] == "|u1"
        assert indices.dtype == np.int64  # read back as anndata writes them
    else:
        assert not any(casts.values()) and not group["X/indices"].filters


@pytest.mark.parametrize("codec", list(CODECS))
def test_presets_on_zarr_v2_round_trip_with_one_compressor(varied_source, tmp_path, codec):
    rechunk_store(varied_source, tmp_path / "out.zarr", 1000, codec=codec, zarr_format=2)
    assert_same_anndata(ad.read_zarr(tmp_path / "out.zarr"), ad.read_zarr(varied_source))
    data = zarr.open_array(tmp_path / "out.zarr" / "X" / "data", mode="r")
    assert data.metadata.compressor.codec_id == ("zstd" if codec == "zstd" else "blosc")
    assert bool(data.metadata.filters) == (codec == "packed")
    index = zarr.open_array(tmp_path / "out.zarr" / "obs" / "_index", mode="r")
    assert index.chunks == index.shape  # whole, in one chunk (up to 2**24 cells)


def test_zstd_preset_is_what_anndata_writes(tmp_path):
    ad.AnnData(np.ones((4, 3), dtype=np.float32)).write_zarr(tmp_path / "plain.zarr")
    (sharding,) = zarr.open_array(tmp_path / "plain.zarr" / "X").metadata.codecs
    assert isinstance(sharding, ShardingCodec)  # anndata 0.13 shards by default
    assert sharding.codecs[-1] == CODECS["zstd"].compressor == ZstdCodec(level=0, checksum=False)


def test_index_cast_holds_every_gene_number():
    assert index_cast(70) == index_cast(256) == np.uint8
    assert index_cast(257) == index_cast(58_900) == index_cast(65_536) == np.uint16
    assert index_cast(65_537) == np.uint32
    assert index_cast(2**40) is None


def test_integer_cast_is_exact_or_none():
    assert integer_cast(np.array([0, 3, 255], dtype=np.float32)) == np.uint8
    assert integer_cast(np.array([-2, 100], dtype=np.float32)) == np.int8
    assert integer_cast(np.array([0, 65_535], dtype=np.float32)) == np.uint16
    assert integer_cast(np.array([0, 70_000], dtype=np.float64)) == np.uint32
    assert integer_cast(np.array([1, 2], dtype=np.int64)) == np.uint8
    for refused in ([0.5, 1], [1, np.nan], [1, np.inf], [-0.0, 1], [0, 70_000], []):
        assert integer_cast(np.array(refused, dtype=np.float32)) is None, refused
    assert integer_cast(np.array([True, False])) is None


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"shard": 0}, "shard must be a positive integer .* got 0"),
        ({"codec": "gzip"}, "codec 'gzip' is not one of blosc-lz4, zstd, packed"),
        ({"shard": 2, "zarr_format": 2}, "shard 2 needs zarr_format 3 .* got zarr_format 2"),
    ],
)
def test_bad_geometry_is_refused_before_any_output(varied_source, tmp_path, kwargs, needle):
    with pytest.raises(ChunkatlasError, match=needle):
        rechunk_store(varied_source, tmp_path / "out.zarr", 1000, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_shards_mean_fewer_objects_and_packed_fewer_bytes(fetched, sharded, unsharded, tmp_path):
    _, packed_sharded = sharded
    _, zstd_unsharded = unsharded
    _, zstd_sharded = geometry_store(fetched, tmp_path / "zs", shard=SHARD)
    _, packed_unsharded = geometry_store(fetched, tmp_path / "pu", codec="packed")
    assert zstd_sharded["objects"] < zstd_unsharded["objects"]
    assert packed_sharded["objects"] == zstd_sharded["objects"]
    assert packed_unsharded["stored_bytes"] < zstd_unsharded["stored_bytes"]
    assert packed_sharded["stored_bytes"] < zstd_sharded["stored_bytes"]
    data = next(a for a in packed_sharded["arrays"] if a["path"] == "X/data")
    assert data["shards"] == [SHARD * data["chunks"][0]]
    assert data["n_objects"] == data["stored_chunks"] == len(data["chunk_files"]) < data["n_chunks"]
    assert decode_pass_seconds(sharded[0]) > 0


def test_analysis_is_identical_for_every_geometry(sharded, unsharded, tmp_path):
    params = AnalysisParams(n_top_genes=100, n_comps=10)
    results = []
    for name, (store, _) in {"sharded": sharded, "unsharded": unsharded}.items():
        analyze_store(store, tmp_path / f"{name}.zarr", task_cells=SIZE, params=params)
        results.append(ad.read_zarr(tmp_path / f"{name}.zarr"))
    first, second = results
    pd.testing.assert_frame_equal(first.var, second.var)
    np.testing.assert_array_equal(first.obsm["X_pca"], second.obsm["X_pca"])
    np.testing.assert_array_equal(first.varm["PCs"], second.varm["PCs"])


def flip_byte(path, where: int = 40) -> None:
    """Damage one byte of the first inner chunk of a shard (the index sits at the end)."""
    raw = bytearray(path.read_bytes())
    raw[where] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda p: p.unlink(), "lost shard '{key}'"),
        (lambda p: p.write_bytes(p.read_bytes()[:-9]), r"shard '{key}' is \d+ bytes, manifest"),
        (flip_byte, "shard '{key}' fails its checksum"),
    ],
    ids=["lost", "truncated", "corrupt"],
)
def test_verify_names_a_damaged_shard(sharded, tmp_path, damage, needle):
    store, _ = sharded
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    key = chunk_key(store, "X/data", 1)
    damage(copy / "X" / "data" / key)
    with pytest.raises(ChunkatlasError, match=needle.format(key=key)) as caught:
        verify_store(copy, store.with_name("store.manifest.json"))
    assert "array 'X/data'" in str(caught.value) and "\n" not in str(caught.value)


def test_a_damaged_shard_read_without_manifest_is_named(sharded, tmp_path):
    store, _ = sharded
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    key = f"X/data/{chunk_key(store, 'X/data', 1)}"
    flip_byte(copy / key)
    with pytest.raises(ChunkatlasError, match=rf"shard '{key}' cannot be decoded \(corrupt\?\)"):
        read_dask_backed(copy, 150).X.compute()


def request_log(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]


def test_sharded_store_is_read_by_ranges_and_identical_over_a_failing_server(sharded, tmp_path):
    store, _ = sharded
    faults = Faults(fail_rate=0.3, seed=4)
    with faulty_serving(store.parent, tmp_path / "log.jsonl", faults) as url:
        remote = read_remote_x(f"{url}/store.zarr")
    np.testing.assert_array_equal(remote, local_x(store))
    log = request_log(tmp_path)
    assert any(e["status"] == 503 for e in log)  # faults did happen
    assert any(e["path"].startswith("/store.zarr/X/data/c/") and e["range"] for e in log)


def test_a_shard_missing_once_is_retried_never_read_as_zeros(sharded, tmp_path):
    store, _ = sharded
    path = f"/store.zarr/X/data/{chunk_key(store, 'X/data', 1)}"
    with faulty_serving(store.parent, tmp_path / "log.jsonl", Faults(missing_once={path})) as url:
        remote = read_remote_x(f"{url}/store.zarr")
    np.testing.assert_array_equal(remote, local_x(store))
    statuses = [e["status"] for e in request_log(tmp_path) if e["path"] == path]
    assert statuses[0] == 404 and statuses[1] in (200, 206)  # read again, whole or by ranges


def served_copy(store, tmp_path, damage):
    served = tmp_path / "served"
    shutil.copytree(store.parent, served)
    key = f"X/data/{chunk_key(store, 'X/data', 1)}"
    damage(served / "store.zarr" / key)
    return served, key


ONE_TRY = RemoteSettings(attempts=2, backoff_seconds=0.01)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda p: p.unlink(), "missing, but the manifest lists it"),
        (flip_byte, "fails its CRC-32C"),  # read by ranges: the manifest's CRC-32 cannot help
        (partial(flip_byte, where=-10), "fails its CRC-32C"),
    ],
    ids=["lost", "corrupt-chunk", "corrupt-index"],
)
def test_a_damaged_shard_on_the_server_is_one_line_not_zeros(sharded, tmp_path, damage, needle):
    served, key = served_copy(sharded[0], tmp_path, damage)
    with (
        aiohttp_serving(served, tmp_path / "log.jsonl") as url,
        pytest.raises(ChunkatlasError, match=rf"shard '{key}' .*{needle}") as caught,
    ):
        read_remote_x(f"{url}/store.zarr", ONE_TRY)
    assert "\n" not in str(caught.value)


def test_short_answers_to_a_shard_range_are_one_line(sharded, tmp_path):
    store, _ = sharded
    with (
        faulty_serving(store.parent, tmp_path / "log.jsonl", Faults(bad_range="short")) as url,
        pytest.raises(ChunkatlasError, match=r"shard 'X/.*' .* asked (\d+) bytes, got \d+"),
    ):
        read_remote_x(f"{url}/store.zarr", ONE_TRY)


@pytest.mark.servers
def test_reads_of_neighbouring_chunks_of_a_shard_are_coalesced(sharded, unsharded):
    """zarr merges the byte ranges of neighbouring inner chunks of one shard into one request:
    with a shard's cells per task, reading all of X from the sharded store takes fewer
    requests than from the unsharded one with the same chunks, the bytes of the same order.
    (With one chunk per task each task fetches the shard index too: more requests.)"""
    from chunkatlas.study._measure import measure_store

    def all_x(store):
        table = measure_store(store, repeats=1).set_index("pattern")  # a shard a task
        return table.loc["all_x", "requests"], table.loc["all_x", "bytes"]

    (sharded_requests, sharded_bytes), (plain_requests, plain_bytes) = map(
        all_x, (sharded[0], unsharded[0])
    )
    assert sharded_requests < plain_requests
    assert sharded_bytes < 2 * plain_bytes
