import json
import shutil

import pytest
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.manifest import build_manifest, consolidate_store, verify_store


def test_manifest_lists_every_array(consolidated):
    store, manifest_path = consolidated
    manifest = json.loads(manifest_path.read_text())
    group = zarr.open_group(store, mode="r")
    arrays = {name for name, m in group.members(max_depth=None) if isinstance(m, zarr.Array)}
    assert {a["path"] for a in manifest["arrays"]} == arrays
    data = next(a for a in manifest["arrays"] if a["path"] == "X/data")
    assert data["shape"] == list(group["X/data"].shape)
    assert data["chunks"] == list(group["X/data"].chunks)
    assert data["dtype"] == "float32"
    assert data["compressors"]
    files = [p for p in (store / "X" / "data").iterdir() if not p.name.startswith(".")]
    assert data["stored_bytes"] == sum(p.stat().st_size for p in files)
    assert data["stored_chunks"] == data["n_chunks"] == len(files) > 1
    assert manifest["consolidated"] is True
    assert manifest["x_nnz"] == group["X/data"].shape[0]


def test_metadata_is_consolidated(consolidated):
    store, _ = consolidated
    assert (store / ".zmetadata").exists()
    group = zarr.open_consolidated(str(store), mode="r")
    assert "X/data" in group.metadata.consolidated_metadata.flattened_metadata


def test_verify_refuses_store_that_lost_a_chunk(consolidated, tmp_path):
    store, manifest = consolidated
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    verify_store(copy, manifest)
    (copy / "X" / "data" / "1").unlink()
    with pytest.raises(ChunkatlasError, match="array 'X/data' lost chunk '1'"):
        verify_store(copy, manifest)


def test_verify_refuses_store_without_manifest(consolidated, tmp_path):
    store, _ = consolidated
    with pytest.raises(ChunkatlasError, match="never completed"):
        verify_store(store, tmp_path / "missing.json")


def test_consolidate_refuses_incomplete_store(consolidated, tmp_path):
    store, _ = consolidated
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    (copy / ".zmetadata").unlink()
    (copy / "X" / "indices" / "0").unlink()
    with pytest.raises(ChunkatlasError, match="missing chunks of: X/indices"):
        consolidate_store(copy, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()
    assert build_manifest(copy)["n_obs"] > 0


def damaged_copy(store, tmp_path, change):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    change(copy / "X" / "indices" / "2")
    return copy


def test_verify_names_a_truncated_chunk(consolidated, tmp_path):
    store, manifest = consolidated
    copy = damaged_copy(store, tmp_path, lambda p: p.write_bytes(p.read_bytes()[:-7]))
    with pytest.raises(ChunkatlasError, match=r"array 'X/indices' chunk '2' is \d+ bytes, manifest "
                                              r"says \d+ \(truncated or corrupt\)"):
        verify_store(copy, manifest)


def test_verify_names_a_corrupt_chunk_of_the_same_size(consolidated, tmp_path):
    store, manifest = consolidated

    def flip(p):
        raw = bytearray(p.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        p.write_bytes(bytes(raw))

    copy = damaged_copy(store, tmp_path, flip)
    with pytest.raises(ChunkatlasError, match="array 'X/indices' chunk '2' fails its checksum"):
        verify_store(copy, manifest)
    verify_store(copy, manifest, checksums=False)  # sizes alone cannot see it
