import json
import shutil

import pytest
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.rewrite import consolidate_store
from chunkatlas.store import verify_store
from chunkatlas.store._manifest import METADATA_FILES, build_manifest

from ..support.stores import chunk_key


def test_manifest_lists_every_array(each_format):
    store, manifest_path = each_format
    manifest = json.loads(manifest_path.read_text())
    group = zarr.open_group(store, mode="r")
    arrays = {name for name, m in group.members(max_depth=None) if isinstance(m, zarr.Array)}
    assert {a["path"] for a in manifest["arrays"]} == arrays
    data = next(a for a in manifest["arrays"] if a["path"] == "X/data")
    assert data["shape"] == list(group["X/data"].shape)
    assert data["chunks"] == list(group["X/data"].chunks)
    assert data["dtype"] == "float32"
    assert data["compressors"]
    files = [
        p for p in (store / "X" / "data").rglob("*") if p.is_file() and p.name not in METADATA_FILES
    ]
    assert data["stored_bytes"] == sum(p.stat().st_size for p in files)
    assert data["stored_chunks"] == data["n_chunks"] == len(files) > 1
    assert manifest["consolidated"] is True
    assert manifest["x_nnz"] == group["X/data"].shape[0]
    assert manifest["zarr_format"] == group.metadata.zarr_format


def test_metadata_is_consolidated(each_format):
    store, manifest = each_format
    fmt = json.loads(manifest.read_text())["zarr_format"]
    if fmt == 2:
        assert (store / ".zmetadata").exists()
    else:
        assert "consolidated_metadata" in json.loads((store / "zarr.json").read_text())
    group = zarr.open_consolidated(str(store), mode="r", zarr_format=fmt)
    assert "X/data" in group.metadata.consolidated_metadata.flattened_metadata


def test_verify_refuses_store_that_lost_a_chunk(each_format, tmp_path):
    store, manifest = each_format
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    verify_store(copy, manifest)
    key = chunk_key(store, "X/data", 1)
    (copy / "X" / "data" / key).unlink()
    with pytest.raises(ChunkatlasError, match=f"array 'X/data' lost chunk '{key}'"):
        verify_store(copy, manifest)


def test_verify_refuses_store_without_manifest(each_format, tmp_path):
    store, _ = each_format
    with pytest.raises(ChunkatlasError, match="never completed"):
        verify_store(store, tmp_path / "missing.json")


def test_consolidate_refuses_incomplete_store(each_format, tmp_path):
    store, _ = each_format
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    metadata = ".zmetadata" if (store / ".zmetadata").exists() else "zarr.json"
    raw = json.loads((copy / metadata).read_text()) if metadata == "zarr.json" else None
    if raw is None:
        (copy / metadata).unlink()
    else:  # v3 keeps the consolidated metadata inside the root's zarr.json
        raw.pop("consolidated_metadata", None)
        (copy / metadata).write_text(json.dumps(raw))
    (copy / "X" / "indices" / chunk_key(store, "X/indices", 0)).unlink()
    with pytest.raises(ChunkatlasError, match="missing chunks of: X/indices"):
        consolidate_store(copy, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()
    assert build_manifest(copy)["n_obs"] > 0


def damaged_copy(store, tmp_path, change):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    change(copy / "X" / "indices" / chunk_key(store, "X/indices", 2))
    return copy


def test_verify_names_a_truncated_chunk(each_format, tmp_path):
    store, manifest = each_format
    copy = damaged_copy(store, tmp_path, lambda p: p.write_bytes(p.read_bytes()[:-7]))
    key = chunk_key(store, "X/indices", 2)
    needle = rf"array 'X/indices' chunk '{key}' is \d+ bytes, manifest says \d+ \(truncated"
    with pytest.raises(ChunkatlasError, match=needle):
        verify_store(copy, manifest)


def test_verify_names_a_corrupt_chunk_of_the_same_size(each_format, tmp_path):
    store, manifest = each_format

    def flip(p):
        raw = bytearray(p.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        p.write_bytes(bytes(raw))

    copy = damaged_copy(store, tmp_path, flip)
    key = chunk_key(store, "X/indices", 2)
    needle = f"array 'X/indices' chunk '{key}' fails its checksum"
    with pytest.raises(ChunkatlasError, match=needle):
        verify_store(copy, manifest)
    verify_store(copy, manifest, checksums=False)  # sizes alone cannot see it
