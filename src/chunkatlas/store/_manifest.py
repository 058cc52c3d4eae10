"""The manifest: a store's inventory, every stored object with its size
and CRC-32; built when a store is complete, checked before it is used."""

from __future__ import annotations

import json
import math
import os
import zlib
from pathlib import Path

import zarr

from chunkatlas._version import __version__
from chunkatlas.errors import ChunkatlasError
from chunkatlas.store._chunks import object_noun
from chunkatlas.store._layout import matrix_shape

METADATA_FILES = {".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"}


def describe_codecs(codecs) -> list[str]:
    """Human-readable names and settings of an array's compressors or filters."""
    described = []
    for codec in codecs:
        config = codec.get_config() if hasattr(codec, "get_config") else codec.to_dict()
        described.append(json.dumps(config, sort_keys=True, default=str))
    return described


def stored_chunk_files(array_dir: Path) -> list[Path]:
    """Stored objects of one array directory, metadata excluded: chunk files (v2 keys or v3
    ``c/...`` keys), or shard files of a sharded array."""
    files = []
    for root, _, names in os.walk(array_dir):
        files.extend(Path(root) / n for n in names if n not in METADATA_FILES)
    return sorted(files)


def file_crc32(path: Path) -> str:
    return f"{zlib.crc32(path.read_bytes()):08x}"


def grid_count(shape, grid) -> int:
    return math.prod(math.ceil(s / g) for s, g in zip(shape, grid, strict=True))


def describe_array(root: Path, path: str, array: zarr.Array, *, checksums: bool = True) -> dict:
    """One manifest entry.

    ``chunks`` is the shape of a chunk (inside a shard, for a sharded array), ``shards`` that of
    a shard or None; ``n_chunks`` counts chunks, ``n_objects`` the files the array must have
    (its shards, or its chunks) and ``stored_chunks`` those it has; ``chunk_files`` maps each
    file's key to [bytes, crc32].
    """
    files = stored_chunk_files(root / path)
    shards = getattr(array, "shards", None)
    empty = array.attrs.get("encoding-type") == "null"  # anndata's "no value" (e.g. raw)
    return {
        "path": path,
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "chunks": list(array.chunks),
        "shards": list(shards) if shards else None,
        "filters": describe_codecs(array.filters),
        "compressors": describe_codecs(array.compressors),
        "n_chunks": 0 if empty else grid_count(array.shape, array.chunks),
        "n_objects": 0 if empty else grid_count(array.shape, shards or array.chunks),
        "stored_chunks": len(files),
        "stored_bytes": sum(f.stat().st_size for f in files),
        "chunk_files": {
            f.relative_to(root / path).as_posix(): [
                f.stat().st_size,
                file_crc32(f) if checksums else None,
            ]
            for f in files
        },
    }


def count_objects(root: Path) -> int:
    """Files of the store, metadata included."""
    return sum(len(names) for _, _, names in os.walk(root))


def _open_local(root: Path) -> zarr.Group:
    """A local AnnData store, opened with zarr alone (manifests are built where stores are
    written)."""
    if not root.is_dir():
        raise ChunkatlasError(f"store not found: {root}")
    group = zarr.open_group(root, mode="r")
    if group.attrs.get("encoding-type") != "anndata" or "X" not in group:
        raise ChunkatlasError(f"not an AnnData store with X: {root}")
    return group


def build_manifest(store: str | os.PathLike, *, checksums: bool = True) -> dict:
    """Inventory every array of an AnnData zarr store: path, shape, dtype, chunks, shards,
    codecs, bytes; and ``objects``, the files of the whole store.

    Each stored object (chunk file, or shard file of a sharded array) is listed with its size
    and CRC-32, so a lost, truncated or altered one is found before anything reads it.
    """
    root = Path(store)
    group = _open_local(root)
    arrays = [
        describe_array(root, name, member, checksums=checksums)
        for name, member in sorted(group.members(max_depth=None))
        if isinstance(member, zarr.Array)
    ]
    x = group["X"]
    n_obs, n_vars = matrix_shape(x)
    nnz = int(x["data"].shape[0]) if isinstance(x, zarr.Group) else None
    return {
        "chunkatlas_version": __version__,
        "store": root.name,
        "zarr_format": group.metadata.zarr_format,
        "consolidated": group.metadata.consolidated_metadata is not None,
        "n_obs": int(n_obs),
        "n_vars": int(n_vars),
        "x_sparse": isinstance(x, zarr.Group),
        "x_nnz": nnz,
        "stored_bytes": sum(a["stored_bytes"] for a in arrays),
        "objects": count_objects(root),
        "arrays": arrays,
    }


def load_manifest(path: str | os.PathLike) -> dict:
    where = Path(path)
    if not where.exists():
        raise ChunkatlasError(f"manifest not found: {where} (the store was never completed)")
    try:
        return json.loads(where.read_text())
    except json.JSONDecodeError as err:
        raise ChunkatlasError(f"manifest is not valid JSON: {where}") from err


def manifest_location(store: str | os.PathLike) -> str:
    """``…/store.zarr`` -> ``…/store.manifest.json`` (the layout consolidate writes), for paths
    and URLs alike."""
    base = str(store).rstrip("/")
    return (base[: -len(".zarr")] if base.endswith(".zarr") else base) + ".manifest.json"


def verify_store(
    store: str | os.PathLike, manifest_path: str | os.PathLike, *, checksums: bool = True
) -> dict:
    """Check a store against its manifest before use; return the manifest.

    Every array the manifest lists must be present with the same shape, chunks and shards, and
    every stored object with the same size (and CRC-32, when ``checksums``), so a store whose
    writer died, or that lost or damaged a chunk or shard, is refused with the object named.
    """
    manifest = load_manifest(manifest_path)
    current = {a["path"]: a for a in build_manifest(store, checksums=checksums)["arrays"]}
    for expected in manifest["arrays"]:
        name = expected["path"]
        found = current.get(name)
        if found is None:
            raise ChunkatlasError(f"store {store} lacks array {name!r} of its manifest")
        for key in ("shape", "chunks", "shards"):
            if found.get(key) != expected.get(key):  # manifests before shards lack "shards"
                raise ChunkatlasError(
                    f"store {store}: array {name!r} has {key} {found[key]}, "
                    f"manifest says {expected[key]}"
                )
        noun = object_noun(expected.get("shards"), expected["chunks"])
        for key, (size, crc) in expected["chunk_files"].items():
            seen = found["chunk_files"].get(key)
            if seen is None:
                raise ChunkatlasError(f"store {store}: array {name!r} lost {noun} {key!r}")
            if seen[0] != size:
                raise ChunkatlasError(
                    f"store {store}: array {name!r} {noun} {key!r} is {seen[0]} bytes, "
                    f"manifest says {size} (truncated or corrupt)"
                )
            if checksums and seen[1] != crc:
                raise ChunkatlasError(
                    f"store {store}: array {name!r} {noun} {key!r} fails its checksum (corrupt)"
                )
    return manifest
