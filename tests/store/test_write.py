"""Atomic writes (chunkatlas.store._write): an output is at its final path complete, or not at
all; what killed writers left is removed by the next one."""

from __future__ import annotations

import json

import pytest
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import (
    DEFAULT_ZARR_FORMAT,
    atomic_directory,
    new_zarr_store,
    refuse_existing,
    write_json_atomic,
)


def names_in(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_directory_moves_the_finished_directory_into_place(tmp_path):
    final = tmp_path / "deeper" / "out.zarr"
    with atomic_directory(final) as tmp:
        assert tmp.parent == final.parent and tmp != final
        assert not final.exists()  # nothing at the final path while the body writes
        tmp.mkdir()
        (tmp / "part").write_text("whole")
    assert (final / "part").read_text() == "whole"
    assert names_in(final.parent) == ["out.zarr"]  # no temporary left beside it


def test_atomic_directory_leaves_nothing_when_the_body_raises(tmp_path):
    final = tmp_path / "out.zarr"
    with pytest.raises(RuntimeError, match="writer failed"), atomic_directory(final) as tmp:
        tmp.mkdir()
        (tmp / "part").write_text("half")
        raise RuntimeError("writer failed")
    assert not final.exists()
    assert names_in(tmp_path) == []


def test_atomic_directory_removes_stale_temporaries_of_its_path_only(tmp_path):
    killed = tmp_path / ".out.zarr.tmp-99999"  # a killed writer's directory
    killed.mkdir()
    (killed / "junk").write_text("half")
    (tmp_path / ".out.zarr.tmp-12").write_text("half")  # and a killed writer's file
    other = tmp_path / ".other.zarr.tmp-99999"  # another output's writer: not ours to remove
    other.mkdir()
    with atomic_directory(tmp_path / "out.zarr") as tmp:
        tmp.mkdir()
    assert names_in(tmp_path) == [".other.zarr.tmp-99999", "out.zarr"]


def test_an_existing_output_is_refused_before_the_body_runs(tmp_path):
    final = tmp_path / "out.zarr"
    final.mkdir()
    (final / "kept").write_text("earlier")
    ran = []
    with pytest.raises(ChunkatlasError, match=r"output already exists: .*out\.zarr \(remove it"):
        with atomic_directory(final):
            ran.append(True)
    assert ran == []
    assert (final / "kept").read_text() == "earlier"
    assert refuse_existing(tmp_path / "new.zarr") == tmp_path / "new.zarr"
    with pytest.raises(ChunkatlasError, match="output already exists"):
        refuse_existing(str(final))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_new_zarr_store_writes_the_format_asked_for(tmp_path, zarr_format):
    final = tmp_path / "new.zarr"
    with new_zarr_store(final, zarr_format) as root:
        root.create_array("a", shape=(4,), dtype="i4")[:] = [1, 2, 3, 4]
        assert not final.exists()
    group = zarr.open_group(final, mode="r")
    assert group.metadata.zarr_format == zarr_format
    assert group["a"][:].tolist() == [1, 2, 3, 4]
    assert names_in(tmp_path) == ["new.zarr"]


def test_new_zarr_store_writes_zarr_v3_by_default_and_refuses_other_formats(tmp_path):
    with new_zarr_store(tmp_path / "default.zarr"):
        pass
    assert zarr.open_group(tmp_path / "default.zarr").metadata.zarr_format == DEFAULT_ZARR_FORMAT
    with pytest.raises(ChunkatlasError, match="zarr_format 4 is not one of 2, 3"):
        with new_zarr_store(tmp_path / "v4.zarr", 4):
            pass
    assert names_in(tmp_path) == ["default.zarr"]


def test_new_zarr_store_that_fails_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="bad data"), new_zarr_store(tmp_path / "x.zarr") as root:
        root.create_array("a", shape=(4,), dtype="i4")
        raise ValueError("bad data")
    assert names_in(tmp_path) == []


def test_write_json_atomic_writes_sorted_json_and_replaces_the_old_file(tmp_path):
    path = tmp_path / "sub" / "record.json"
    write_json_atomic(path, {"b": 1, "a": [1, 2]})
    text = path.read_text()
    assert json.loads(text) == {"b": 1, "a": [1, 2]}
    assert text.index('"a"') < text.index('"b"') and text.endswith("}\n")
    write_json_atomic(path, {"c": None})
    assert json.loads(path.read_text()) == {"c": None}
    assert names_in(path.parent) == ["record.json"]


def test_write_json_atomic_keeps_the_old_file_when_the_payload_cannot_be_written(tmp_path):
    path = tmp_path / "record.json"
    write_json_atomic(path, {"kept": True})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"not json": {1, 2}})
    assert json.loads(path.read_text()) == {"kept": True}
    assert names_in(tmp_path) == ["record.json"]
