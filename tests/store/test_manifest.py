"""The manifest (chunkatlas.store._manifest): every stored object of a store with its size and
CRC-32, and a store that lost, truncated or altered one refused in one line naming it."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import pytest
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import (
    build_manifest,
    load_manifest,
    manifest_location,
    verify_store,
    write_json_atomic,
)
from chunkatlas.store._manifest import METADATA_FILES

from ..support.stores import chunk_key, small_anndata, write_small_store


def stored_objects(array_dir: Path) -> dict[str, Path]:
    """The chunk files of one array, keyed as in the manifest; found here without chunkatlas."""
    return {
        p.relative_to(array_dir).as_posix(): p
        for p in array_dir.rglob("*")
        if p.is_file() and p.name not in METADATA_FILES
    }


def entry(manifest: dict, path: str) -> dict:
    return next(a for a in manifest["arrays"] if a["path"] == path)


def with_manifest(store: Path) -> Path:
    """Write ``store``'s manifest beside it, as consolidation does; return its path."""
    path = Path(manifest_location(store))
    write_json_atomic(path, build_manifest(store))
    return path


def refusal(store: Path, manifest: Path, **options) -> str:
    with pytest.raises(ChunkatlasError) as caught:
        verify_store(store, manifest, **options)
    message = str(caught.value)
    assert "\n" not in message and str(store) in message
    return message


def test_the_manifest_lists_every_array_and_every_stored_object(small, small_store):
    manifest = build_manifest(small_store)
    group = zarr.open_group(small_store, mode="r")
    arrays = {name for name, m in group.members(max_depth=None) if isinstance(m, zarr.Array)}
    assert {a["path"] for a in manifest["arrays"]} == arrays
    assert {"X/data", "X/indices", "X/indptr", "layers/dense"} <= arrays
    for array in manifest["arrays"]:
        files = stored_objects(small_store / array["path"])
        assert array["chunk_files"] == {
            key: [path.stat().st_size, f"{zlib.crc32(path.read_bytes()):08x}"]
            for key, path in files.items()
        }, array["path"]
        assert array["stored_bytes"] == sum(size for size, _ in array["chunk_files"].values())
    data = entry(manifest, "X/data")
    assert data["shape"] == [small.X.nnz] and data["chunks"] == [50] and data["shards"] is None
    assert data["dtype"] == "float32" and data["compressors"]
    assert data["n_chunks"] == data["n_objects"] == data["stored_chunks"] == -(-small.X.nnz // 50)
    dense = entry(manifest, "layers/dense")
    assert dense["chunks"] == [25, 12] and dense["n_chunks"] == dense["stored_chunks"] == 3


def test_the_manifest_describes_the_store(small, small_store):
    manifest = build_manifest(small_store)
    assert (manifest["n_obs"], manifest["n_vars"]) == (60, 12)
    assert manifest["x_sparse"] is True and manifest["x_nnz"] == small.X.nnz
    assert manifest["store"] == "store.zarr" and manifest["consolidated"] is True
    assert manifest["zarr_format"] == zarr.open_group(small_store).metadata.zarr_format
    assert manifest["stored_bytes"] == sum(a["stored_bytes"] for a in manifest["arrays"])
    files = sum(len(names) for _, _, names in os.walk(small_store))
    assert manifest["objects"] == files


def test_a_store_without_consolidated_metadata_or_with_dense_x(tmp_path):
    adata = small_anndata(n_obs=30, n_vars=5)
    adata.X = adata.layers["dense"]
    store = write_small_store(tmp_path / "dense.zarr", adata, consolidated=False)
    manifest = build_manifest(store)
    assert manifest["consolidated"] is False
    assert manifest["x_sparse"] is False and manifest["x_nnz"] is None
    assert (manifest["n_obs"], manifest["n_vars"]) == (30, 5)


def test_without_checksums_sizes_are_listed_and_crcs_are_not(small_store):
    manifest = build_manifest(small_store, checksums=False)
    sizes = entry(build_manifest(small_store), "X/data")["chunk_files"]
    assert entry(manifest, "X/data")["chunk_files"] == {k: [s, None] for k, (s, _) in sizes.items()}


def test_building_a_manifest_refuses_what_is_not_an_anndata_store(tmp_path):
    with pytest.raises(ChunkatlasError, match="store not found: .*nowhere.zarr"):
        build_manifest(tmp_path / "nowhere.zarr")
    zarr.open_group(tmp_path / "plain.zarr", mode="w").create_array("X", shape=(2, 2), dtype="i4")
    with pytest.raises(ChunkatlasError, match="not an AnnData store with X: .*plain.zarr"):
        build_manifest(tmp_path / "plain.zarr")


def test_an_intact_store_passes_and_its_manifest_is_returned(store_copy):
    manifest = with_manifest(store_copy)
    assert verify_store(store_copy, manifest) == json.loads(manifest.read_text())
    assert load_manifest(manifest) == json.loads(manifest.read_text())


def test_a_lost_chunk_is_named(store_copy):
    manifest = with_manifest(store_copy)
    key = chunk_key(store_copy, "X/data", 1)
    (store_copy / "X" / "data" / key).unlink()
    message = refusal(store_copy, manifest)
    assert message.endswith(f"array 'X/data' lost chunk '{key}'")


def test_a_truncated_chunk_is_named_with_both_sizes(store_copy):
    manifest = with_manifest(store_copy)
    key = chunk_key(store_copy, "layers/dense", 2, 0)
    chunk = store_copy / "layers" / "dense" / key
    size = chunk.stat().st_size
    chunk.write_bytes(chunk.read_bytes()[:-3])
    message = refusal(store_copy, manifest)
    assert message.endswith(
        f"array 'layers/dense' chunk '{key}' is {size - 3} bytes, manifest says {size} "
        "(truncated or corrupt)"
    )


def test_a_flipped_byte_fails_the_checksum_and_only_the_checksum(store_copy):
    manifest = with_manifest(store_copy)
    key = chunk_key(store_copy, "X/indices", 0)
    chunk = store_copy / "X" / "indices" / key
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))
    message = refusal(store_copy, manifest)
    assert message.endswith(f"array 'X/indices' chunk '{key}' fails its checksum (corrupt)")
    verify_store(store_copy, manifest, checksums=False)  # same size: only the CRC tells


def test_an_array_the_store_lacks_or_reshaped_is_refused(store_copy, tmp_path):
    manifest = json.loads(with_manifest(store_copy).read_text())
    extra = dict(entry(manifest, "X/data"), path="layers/spliced")
    write_json_atomic(tmp_path / "extra.json", {**manifest, "arrays": [*manifest["arrays"], extra]})
    message = refusal(store_copy, tmp_path / "extra.json")
    assert message.endswith("lacks array 'layers/spliced' of its manifest")
    entry(manifest, "layers/dense")["chunks"] = [30, 12]
    write_json_atomic(tmp_path / "other.json", manifest)
    message = refusal(store_copy, tmp_path / "other.json")
    assert message.endswith("array 'layers/dense' has chunks [25, 12], manifest says [30, 12]")


def test_a_missing_or_broken_manifest_is_one_line(store_copy, tmp_path):
    with pytest.raises(ChunkatlasError, match=r"manifest not found: .*\(the store was never comp"):
        verify_store(store_copy, tmp_path / "none.json")
    (tmp_path / "broken.json").write_text('{"arrays": [')
    with pytest.raises(ChunkatlasError, match="manifest is not valid JSON: .*broken.json"):
        verify_store(store_copy, tmp_path / "broken.json")


@pytest.mark.parametrize(
    ("store", "manifest"),
    [
        ("results/run/store.zarr", "results/run/store.manifest.json"),
        ("results/run/store.zarr/", "results/run/store.manifest.json"),
        (Path("/data/lung.zarr"), "/data/lung.manifest.json"),
        ("http://127.0.0.1:8000/a/store.zarr", "http://127.0.0.1:8000/a/store.manifest.json"),
        ("s3://bucket/atlas", "s3://bucket/atlas.manifest.json"),
    ],
)
def test_the_manifest_sits_beside_its_store(store, manifest):
    assert manifest_location(store) == manifest
