"""Reading stored arrays so that a chunk that cannot be decoded is named in one line.

zarr, numpy and nothing else: the fused engine's Dask workers read X through here.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import zarr

from chunkatlas.errors import ChunkatlasError


def read_checked(array: zarr.Array, selection: tuple[slice, ...], where: str | os.PathLike):
    """``array[selection]`` (slices), or a ChunkatlasError naming the store ``where``, the array
    and the stored object (chunk, or shard of a sharded array) if one that it reads cannot be
    decoded (corrupt or truncated; in a shard, an inner chunk or the index failing its CRC-32C).

    Runs on Dask workers too: Dask pickles the exception and re-raises it in the client, so a
    store without a manifest that would have caught the damage still fails in one line.
    """
    try:
        return array[selection]
    except ChunkatlasError:  # e.g. the remote reader's own one-line errors
        raise
    except Exception as err:
        for index in chunks_under(array, selection):
            try:
                array[chunk_region(array, index)]
            except Exception as problem:
                key = f"{array.path}/{array.metadata.encode_chunk_key(index)}"
                noun = object_noun(getattr(array, "shards", None), array.chunks)
                raise ChunkatlasError(
                    f"store {where}: {noun} {key!r} cannot be decoded (corrupt?): {problem}"
                ) from err
        raise  # every chunk reads alone: not a damaged chunk


def object_noun(shards, chunks) -> str:
    """What one stored object of an array is called in messages: "shard" when it holds several
    chunks, else "chunk"."""
    return "shard" if shards and tuple(shards) != tuple(chunks) else "chunk"


def stored_grid(array: zarr.Array) -> tuple[int, ...]:
    """The shape of one stored object (a shard of a sharded array, else a chunk)."""
    return getattr(array, "shards", None) or array.chunks


def chunks_under(array: zarr.Array, selection: tuple[slice, ...]) -> itertools.product:
    """Grid indices of the stored objects that ``selection`` touches."""
    ranges = []
    for dim, (size, grid) in enumerate(zip(array.shape, stored_grid(array), strict=True)):
        part = selection[dim] if dim < len(selection) else slice(None)
        start, stop, _ = part.indices(size)
        ranges.append(range(start // grid, -(-stop // grid)) if stop > start else range(0))
    return itertools.product(*ranges)


def chunk_region(array: zarr.Array, index: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(i * g, (i + 1) * g) for i, g in zip(index, stored_grid(array), strict=True))


class _LastChunks:
    """The last (inner) chunk each 1-D array's span read decoded, by store and array."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], tuple[int, np.ndarray]] = {}
        self.lock = threading.Lock()


_last_chunks: _LastChunks | None = None


@contextmanager
def sequential_reads() -> Iterator[None]:
    """Within the block, :func:`read_span` keeps the last chunk it decoded of each array, so a
    writer reading blocks of cells in order decodes each chunk of its source once, whatever
    its blocks (a block's last chunk is the next block's first).  Memory: one chunk per array."""
    global _last_chunks
    _last_chunks = _LastChunks()
    try:
        yield
    finally:
        _last_chunks = None


def read_span(array: zarr.Array, start: int, stop: int, where: str | os.PathLike) -> np.ndarray:
    """``array[start:stop]`` of a 1-D array, through :func:`read_checked`; inside
    :func:`sequential_reads`, the chunk the previous span ended in is not decoded again."""
    kept = _last_chunks
    if kept is None or stop <= start:
        return np.asarray(read_checked(array, (slice(start, stop),), where))
    size = array.chunks[0]
    key = (str(array.store), array.path)
    with kept.lock:
        number, chunk = kept.kept.get(key, (-1, None))
    parts, position = [], start
    if chunk is not None and number == start // size:
        end = min(stop, (number + 1) * size)
        parts.append(chunk[start - number * size : end - number * size])
        position = end
    if position < stop:
        last = (stop - 1) // size
        # whole chunks: zarr decodes every chunk it touches whole anyway
        begin, through = position // size * size, min(array.shape[0], (last + 1) * size)
        read = np.asarray(read_checked(array, (slice(begin, through),), where))
        parts.append(read[position - begin : stop - begin])
        with kept.lock:
            kept.kept[key] = (last, read[last * size - begin :].copy())
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
