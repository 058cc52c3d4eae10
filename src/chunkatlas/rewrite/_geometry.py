"""Store geometry: how arrays are cut into chunks and shards, and the codecs that encode them.

Orientation (:data:`ORIENTATIONS`)
    Cell-major stores keep each cell's values together (CSR; dense chunks of whole cells), so a
    block of cells is one range; gene-major stores keep each gene's values together (CSC;
    dense chunks of whole genes), so one gene is one small range, read by plain anndata as
    ``ad.io.sparse_dataset(group["X"])[:, genes]``.

Chunks (:func:`matrix_chunks`, :func:`column_settings`)
    X and every layer hold about ``size`` cells per chunk of a cell-major store, ``size``
    genes of a gene-major one, so that a partial read decodes little beyond what it needs.
    obs and var arrays (columns, the index, categorical codes) are cut apart from X, for how
    they are read: whole, by every reader.  In zarr v3 each one is a single stored object, a
    shard of chunks of :data:`COLUMN_ROWS` rows, so opening a store costs one request per array
    at any number of cells; zarr v2 has no shards and stores chunks of
    :data:`V2_COLUMN_ROWS` rows (one object up to 16.7 million cells).

Shards (:func:`shard_shape`, zarr v3 only)
    ``shard`` chunks per shard along the chunked axis: one stored object holds that many chunks
    and an index of where each one starts (zarr's default index codecs, ending in CRC-32C).
    ``shard=1`` writes one object per chunk.

Codec presets (:data:`CODECS`).  In zarr v3 every preset ends each (inner) chunk with a CRC-32C
checksum, so a damaged chunk fails its checksum instead of decoding into wrong numbers; zarr v2
has a single compressor and no such place, and relies on the manifest's CRC-32 of each file.

=========  ================================================  ===================================
preset     encoding                                          for
=========  ================================================  ===================================
blosc-lz4  Blosc lz4, level 5, byte shuffle                  anndata 0.12's default (zarr v2's)
zstd       Zstd level 0 (no Zstd checksum)                   anndata 0.13's default (zarr v3's)
packed     CSR ``indices``: stored as the narrowest          sparse counts, the default here:
           unsigned type that holds every gene number, then  deltas of sorted gene indices are
           delta coding; ``indptr``: delta coding;           small, and counts fit in one or two
           integer-valued matrix values (X's ``data``,       bytes; bit-shuffle puts their many
           dense X, layers): stored as the narrowest         zero high bits together for zstd;
           integer type that holds them all (never when      narrow types decode in a fraction
           one value is not an integer: then as they are);   of the time
           then Blosc zstd, level 5, bit-shuffle
=========  ================================================  ===================================

The cast of ``packed`` is chosen from the values themselves (:func:`integer_cast`) and changes
no value read back: it is refused for any non-integer, non-finite or negative-zero value, or a
range no narrower integer type holds.  Delta coding of integers is exact (wrap-around
arithmetic undoes itself, also in the narrow unsigned type of CSR indices); CSR indices are
sorted only within a row, so a delta is negative at each row start, which wraps around exactly
as well.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from dataclasses import dataclass

import numcodecs
import numpy as np
import zarr
import zarr.codecs.numcodecs
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from chunkatlas._schema import default
from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import is_sparse, open_anndata_group, stored_grid

#: Which axis a store follows: cell-major (CSR, or dense chunks of whole cells) or gene-major
#: (CSC, or dense chunks of whole genes).
ORIENTATIONS = ("cells", "genes")
#: Rows per (inner) chunk of an obs or var array: 8 MB of float64 at most, so a chunk's
#: buffers stay small while the array's one shard holds any number of cells.
COLUMN_ROWS = 1 << 20
#: Rows per chunk of an obs or var array in zarr v2 (no shards): one object up to 2**24 cells.
V2_COLUMN_ROWS = 1 << 24
#: Values per block when scanning an array (bounds memory).
SCAN_VALUES = 1 << 22


@dataclass(frozen=True)
class CodecPreset:
    """A named encoding: ``compressor`` (zarr v3 codec), delta coding of CSR indices and indptr,
    and storing integer-valued matrix values as a narrower integer type."""

    compressor: BloscCodec | ZstdCodec
    delta: bool = False
    cast: bool = False


CODECS: dict[str, CodecPreset] = {
    "blosc-lz4": CodecPreset(BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")),
    "zstd": CodecPreset(ZstdCodec(level=0, checksum=False)),
    "packed": CodecPreset(
        BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"), delta=True, cast=True
    ),
}
# The analysis default (the schema's first codec), chosen on decode time per pass
# (benchmarks/README.md, "Round two").
DEFAULT_CODEC = default("codecs")[0]

# numcodecs' shuffle constants for zarr v2 (NOSHUFFLE, SHUFFLE, BITSHUFFLE).
_V2_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
# Candidates for a cast, narrowest first.
_CAST_TYPES = tuple(np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4"))
_INDEX_TYPES = tuple(np.dtype(t) for t in ("u1", "u2", "u4"))


def check_geometry(shard: int, codec: str, zarr_format: int) -> None:
    """Refuse a shard count, codec preset or zarr format that do not go together."""
    if isinstance(shard, bool) or not isinstance(shard, int) or shard < 1:
        raise ChunkatlasError(
            f"shard must be a positive integer (chunks per shard; 1 = unsharded), got {shard!r}"
        )
    if codec not in CODECS:
        raise ChunkatlasError(f"codec {codec!r} is not one of {', '.join(CODECS)}")
    if shard > 1 and zarr_format != 3:
        raise ChunkatlasError(
            f"shard {shard} needs zarr_format 3 (zarr v2 has no shards), got zarr_format "
            f"{zarr_format}; use shard 1 or zarr_format 3"
        )


def matrix_chunks(
    shape: tuple[int, int], size: int, *, nnz: int | None = None, orientation: str = "cells"
) -> tuple[int, ...]:
    """On-disk chunks for one matrix.

    Parameters
    ----------
    shape
        (n_obs, n_vars) of the matrix.
    size
        The chunk size: cells per chunk of a cell-major store, genes per chunk of a gene-major
        one.
    nnz
        Stored values of a sparse matrix (CSR when cell-major, CSC when gene-major); None for a
        dense one.  The 1-D data and indices arrays are chunked so that one chunk holds about
        ``size`` cells (genes) on average.
    orientation
        "cells": dense chunks are (size, n_vars); "genes": (n_obs, size), as in the remote-zarr
        tutorial where one gene is one request.
    """
    check_orientation(orientation)
    if size < 1:
        raise ChunkatlasError(f"chunk size must be a positive integer, got {size}")
    n_obs, n_vars = shape
    if nnz is not None:
        per_unit = nnz / max(n_obs if orientation == "cells" else n_vars, 1)
        return (max(1, math.ceil(per_unit * size)),)
    if orientation == "cells":
        return (max(1, min(size, n_obs)), max(1, n_vars))
    return (max(1, n_obs), max(1, min(size, n_vars)))


def check_orientation(orientation: str) -> None:
    if orientation not in ORIENTATIONS:
        raise ChunkatlasError(
            f"orientation {orientation!r} is not one of {', '.join(ORIENTATIONS)} "
            "(cells: cell-major, CSR; genes: gene-major, CSC)"
        )


def column_settings(codec: str, zarr_format: int, length: int) -> dict:
    """``dataset_kwargs`` for an obs or var array of ``length`` rows: whole in one object
    (zarr v3: one shard of :data:`COLUMN_ROWS`-row chunks; zarr v2: chunks of
    :data:`V2_COLUMN_ROWS` rows), whatever the layout of X."""
    rows = COLUMN_ROWS if zarr_format == 3 else V2_COLUMN_ROWS
    chunks = (max(1, min(rows, length)),)
    per_shard = math.ceil(length / chunks[0]) if zarr_format == 3 else 1
    return array_settings(codec, zarr_format, chunks, (length,), max(1, per_shard))


def shard_shape(
    chunks: tuple[int, ...], shape: tuple[int, ...] | None, shard: int
) -> tuple[int, ...] | None:
    """Shards of ``shard`` chunks along the chunked axis (the first one a chunk does not span),
    or None for an unsharded array.  ``shape`` None: a 1-D array whose length is not known yet
    (a CSR matrix written block by block)."""
    if shard == 1:
        return None
    if shape is None:
        return (chunks[0] * shard, *chunks[1:])
    for axis, (chunk, length) in enumerate(zip(chunks, shape, strict=True)):
        if chunk < length:
            grid = list(chunks)
            grid[axis] = chunk * min(shard, math.ceil(length / chunk))
            return tuple(grid)
    return None  # one chunk holds it all


def array_settings(
    codec: str,
    zarr_format: int,
    chunks: tuple[int, ...],
    shape: tuple[int, ...] | None,
    shard: int = 1,
    *,
    dtype: np.dtype | None = None,
    role: str = "column",
    cast: np.dtype | None = None,
) -> dict:
    """``dataset_kwargs`` for one array, as anndata passes them to ``create_array``: chunks,
    shards, filters and compressors.

    ``role`` "index" (CSR indptr) gets the preset's delta coding; "indices" (CSR indices) too,
    after the ``cast`` of :func:`index_cast` for presets that cast; "values" (matrix values) the
    ``cast`` found by :func:`integer_cast`; "column" (obs and var arrays, strings too) neither:
    only chunks, shards and compressors.
    """
    preset = CODECS[codec]
    v3 = zarr_format == 3
    # The same codec names and settings exist as numcodecs codecs (v2) and zarr v3 wrappers.
    source = zarr.codecs.numcodecs if v3 else numcodecs
    filters = []
    if role in ("index", "indices") and preset.delta:
        narrow = cast if role == "indices" and preset.cast else None
        if narrow is not None:  # stored narrow, decoded to ``dtype``; deltas wrap around in it
            filters.append(source.AsType(encode_dtype=narrow.str, decode_dtype=np.dtype(dtype).str))
        filters.append(source.Delta(dtype=(narrow or np.dtype(dtype)).str))
    if role == "values" and cast is not None:
        filters.append(source.AsType(encode_dtype=cast.str, decode_dtype=np.dtype(dtype).str))
    settings: dict = {"chunks": tuple(chunks)}
    shards = shard_shape(chunks, shape, shard)
    if shards is not None:
        settings["shards"] = shards
    if filters:
        settings["filters"] = filters
    settings["compressors"] = [preset.compressor, Crc32cCodec()] if v3 else as_v2(preset)
    return settings


def as_v2(preset: CodecPreset) -> numcodecs.abc.Codec:
    """The preset's compressor as zarr v2's single numcodecs compressor."""
    codec = preset.compressor
    if isinstance(codec, ZstdCodec):
        return numcodecs.Zstd(level=codec.level, checksum=codec.checksum)
    return numcodecs.Blosc(
        cname=str(codec.cname), clevel=codec.clevel, shuffle=_V2_SHUFFLE[str(codec.shuffle)]
    )


def index_cast(n: int) -> np.dtype | None:
    """The narrowest unsigned type that holds every index below ``n`` (gene numbers of CSR
    indices; two bytes for up to 65,536 genes), or None if only 8 bytes do."""
    return next((t for t in _INDEX_TYPES if n - 1 <= np.iinfo(t).max), None)


class IntegerRange:
    """Values seen block by block, and the narrowest integer type that holds them all."""

    def __init__(self, dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.whole = self.dtype.kind in "iuf"  # integers, or floats holding integers
        self.low, self.high = math.inf, -math.inf

    def add(self, block: np.ndarray) -> None:
        if not self.whole or block.size == 0:
            return
        if self.dtype.kind == "f":
            whole = np.isfinite(block) & (block == np.trunc(block))
            if not whole.all() or np.signbit(block[block == 0]).any():
                self.whole = False
                return
        self.low, self.high = min(self.low, block.min()), max(self.high, block.max())

    def cast(self) -> np.dtype | None:
        """The narrowest integer type, narrower than the values' own, that holds each of them
        exactly; None when there is none (a non-integer, non-finite or negative-zero value, a
        range too wide, or no values)."""
        if not self.whole or self.low > self.high:
            return None
        return next(
            (
                t
                for t in _CAST_TYPES
                if t.itemsize < self.dtype.itemsize
                and np.iinfo(t).min <= self.low
                and self.high <= np.iinfo(t).max
            ),
            None,
        )


def integer_cast(array) -> np.dtype | None:
    """:meth:`IntegerRange.cast` of every value of ``array`` (zarr or numpy), read in blocks."""
    values = IntegerRange(array.dtype)
    if array.size:
        for block in scan_blocks(array):
            values.add(block)
    return values.cast()


def scan_blocks(array):
    """``array`` (zarr or numpy) as numpy blocks of whole rows, about SCAN_VALUES values each;
    of a zarr array, whole stored objects, so that each is decoded once."""
    rows = max(1, SCAN_VALUES // max(1, math.prod(array.shape[1:])))
    if isinstance(array, zarr.Array):
        grid = stored_grid(array)[0]
        rows = max(1, rows // grid) * grid
    for start in range(0, array.shape[0], rows):
        yield np.asarray(array[start : start + rows])


def chunk_regions(array: zarr.Array):
    """Selections of each (inner) chunk of ``array``, in order."""
    starts = [range(0, n, c) for n, c in zip(array.shape, array.chunks, strict=True)]
    for corner in itertools.product(*starts):
        yield tuple(slice(s, s + c) for s, c in zip(corner, array.chunks, strict=True))


def decode_pass_seconds(store: str | os.PathLike) -> float:
    """Seconds to read and decode X of a local store once, chunk by chunk (for a sparse X: its
    indptr, indices and data).  One informal measurement: the study repeats it."""
    x = open_anndata_group(store)["X"]
    arrays = [x["indptr"], x["indices"], x["data"]] if is_sparse(x) else [x]
    start = time.perf_counter()
    for array in arrays:
        for region in chunk_regions(array):
            array[region]
    return time.perf_counter() - start
