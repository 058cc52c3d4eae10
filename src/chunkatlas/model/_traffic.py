"""What a layout makes a reader fetch, predicted from the layout alone: requests, bytes and
objects per access pattern, for a store of any size (it need not exist).

Each pattern reads ranges of X's arrays (``indptr``, ``indices``, ``data``): all of them, a
block of cells (a range of a cell-major store), or a few genes (ranges of a gene-major store).
An unsharded array costs one request per chunk the ranges touch; a sharded one, one request per
shard read whole, or its index and one request per run of adjacent chunks of a shard read in
part (zarr coalesces neighbouring chunks of a shard).  What a reader does besides (anndata
reads a matrix's pointers before its values) is measured once per pattern on a study's stores
and added (:func:`calibrate`), so the study's own stores are predicted exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from chunkatlas.study import CELL_BLOCK, PANEL

#: The patterns a layout is chosen for (``open`` reads obs and var, whatever the layout of X).
X_PATTERNS = ("one_gene", "fifty_genes", "cell_block", "all_x")
#: Bytes of a shard index per inner chunk (offset and length, 8 bytes each) and its checksum.
INDEX_BYTES_PER_CHUNK = 16
INDEX_CHECKSUM_BYTES = 4


@dataclass(frozen=True)
class Atlas:
    """The size of a matrix: cells, genes and stored values (``dense``: X is stored dense, so
    every one of its values is a stored value)."""

    n_obs: int
    n_vars: int
    nnz: int
    dense: bool = False

    def with_cells(self, n_obs: int) -> Atlas:
        """The same atlas at ``n_obs`` cells, as deep per cell."""
        nnz = max(1, round(self.nnz / self.n_obs * n_obs))
        return Atlas(n_obs, self.n_vars, nnz, self.dense)


@dataclass(frozen=True)
class Layout:
    """A store geometry: orientation, chunk (cells or genes per chunk), chunks per shard, codec."""

    orientation: str
    chunk: int
    shard: int
    codec: str

    def describe(self) -> str:
        shards = "unsharded" if self.shard == 1 else f"{self.shard} chunks per shard"
        unit = self.orientation if self.chunk > 1 else self.orientation[:-1]
        major = f"{self.orientation[:-1]}-major"
        return f"{major}, {self.chunk:,} {unit} per chunk, {shards}, {self.codec}"

    def command(self, source: str, dest: str) -> str:
        return (
            f"chunkatlas rechunk {source} {dest} --orientation {self.orientation} "
            f"--chunk {self.chunk} --shard {self.shard} --codec {self.codec}"
        )


@dataclass(frozen=True)
class Traffic:
    requests: int
    bytes: float
    objects: int  # objects of X's arrays in the store


def chunk_values(atlas: Atlas, layout: Layout) -> int:
    """Values per chunk of ``data`` and ``indices`` (and entries per chunk of ``indptr``): about
    ``chunk`` cells' (or genes') values, as the writer chunks them."""
    units = atlas.n_obs if layout.orientation == "cells" else atlas.n_vars
    return max(1, math.ceil(atlas.nnz / max(units, 1) * layout.chunk))


def _array_reads(
    length: int,
    chunk: int,
    shard: int,
    ranges: Iterable[tuple[int, int]],
    *,
    grows: bool = False,
):
    """(requests, chunks fetched, shard indexes fetched, objects) of reading ``ranges`` of a
    1-D array of ``length`` values in chunks of ``chunk``, ``shard`` chunks per object.
    ``grows``: written without a known length (``data`` and ``indices``, appended block by
    block), so every shard has room for ``shard`` chunks; otherwise shards hold no more chunks
    than the array has, and an array of one chunk is not sharded.

    As zarr reads a sharded array: a full shard wanted whole is one request; any other shard
    (part of it wanted, or the array's last, shorter shard) its index, then one request per
    run of adjacent chunks.
    """
    n_chunks = math.ceil(length / chunk)
    if grows:
        per_object = shard
    else:
        per_object = min(shard, n_chunks) if shard > 1 and n_chunks > 1 else 1
    objects = math.ceil(n_chunks / per_object)
    touched: set[int] = set()
    for low, high in ranges:
        if high > low:
            touched.update(range(low // chunk, (high - 1) // chunk + 1))
    if per_object == 1:
        return len(touched), len(touched), 0, objects
    requests = indexes = 0
    by_shard: dict[int, list[int]] = {}
    for index in sorted(touched):
        by_shard.setdefault(index // per_object, []).append(index)
    for number, chunks in by_shard.items():
        full = (number + 1) * per_object <= n_chunks
        if full and len(chunks) == per_object:
            requests += 1
            continue
        runs = 1 + sum(1 for a, b in zip(chunks, chunks[1:], strict=False) if b != a + 1)
        requests += 1 + runs
        indexes += 1
    return requests, len(touched), indexes, objects


def pattern_ranges(atlas: Atlas, layout: Layout, pattern: str) -> tuple[list, list]:
    """Ranges of (pointers, values) a pattern reads: all of X, or its cells' or genes' ranges
    where the orientation keeps them together (averaging the values per cell or gene)."""
    pointers = atlas.n_obs + 1 if layout.orientation == "cells" else atlas.n_vars + 1
    everything = ([(0, pointers)], [(0, atlas.nnz)])
    if pattern == "cell_block" and layout.orientation == "cells":
        cells = max(1, min(CELL_BLOCK, atlas.n_obs // 10))
        return [(0, cells + 1)], [(0, round(atlas.nnz / atlas.n_obs * cells))]
    if pattern in ("one_gene", "fifty_genes") and layout.orientation == "genes":
        if pattern == "one_gene":
            genes = [atlas.n_vars // 2]
        else:
            spread = np.linspace(0, atlas.n_vars - 1, min(PANEL, atlas.n_vars)).astype(int)
            genes = sorted(set(spread.tolist()))
        # A gene's own values are not known from the size alone: an average gene, starting
        # where its chunk starts, touches as few chunks as it can.
        per_gene, size = atlas.nnz / atlas.n_vars, chunk_values(atlas, layout)
        starts = [round(g * per_gene) // size * size for g in genes]
        values = [(start, start + max(1, round(per_gene))) for start in starts]
        return [(g, g + 2) for g in genes], values
    return everything


@dataclass(frozen=True)
class Encoding:
    """What a codec stores and costs, per orientation, measured on a study's stores."""

    bytes_per_value: float  # stored bytes of data and indices per stored value
    bytes_per_pointer: float  # stored bytes of indptr per entry
    decode_seconds_per_byte: float  # one local decode pass of X, per stored byte

    def x_bytes(self, atlas: Atlas, orientation: str) -> float:
        """Stored bytes of X of ``atlas`` in this encoding."""
        pointers = (atlas.n_obs if orientation == "cells" else atlas.n_vars) + 1
        return atlas.nnz * self.bytes_per_value + pointers * self.bytes_per_pointer


def predict_traffic(
    atlas: Atlas,
    layout: Layout,
    pattern: str,
    encoding: Encoding,
    extra_requests: int = 0,
) -> Traffic:
    """Requests and bytes of ``pattern`` on ``layout`` stored in ``encoding``, plus the
    reader's ``extra_requests``."""
    size = chunk_values(atlas, layout)
    pointer_ranges, value_ranges = pattern_ranges(atlas, layout, pattern)
    pointers = atlas.n_obs + 1 if layout.orientation == "cells" else atlas.n_vars + 1
    index_bytes = INDEX_BYTES_PER_CHUNK * layout.shard + INDEX_CHECKSUM_BYTES
    requests = objects = 0
    fetched = 0.0
    per_value = encoding.bytes_per_value / 2  # data and indices share it, about evenly
    for _ in ("data", "indices"):  # the same ranges of both
        reqs, chunks, indexes, objs = _array_reads(
            atlas.nnz, size, layout.shard, value_ranges, grows=True
        )
        fetched += min(chunks * size, atlas.nnz) * per_value + indexes * index_bytes
        requests, objects = requests + reqs, objects + objs
    reqs, chunks, indexes, objs = _array_reads(pointers, size, layout.shard, pointer_ranges)
    fetched += min(chunks * size, pointers) * encoding.bytes_per_pointer + indexes * index_bytes
    return Traffic(max(0, requests + reqs + extra_requests), fetched, objects + objs)


def sparse_only(sizes: pd.DataFrame) -> pd.DataFrame:
    """The stores of sparse X: the traffic model follows their arrays (dense X has no nnz)."""
    return sizes[pd.to_numeric(sizes["nnz"], errors="coerce").notna()]


def encodings(remote: pd.DataFrame, sizes: pd.DataFrame) -> dict[tuple[str, str], Encoding]:
    """(orientation, codec) -> :class:`Encoding`, medians over the study's stores.  ``sizes``
    has each store's geometry with ``nnz`` (from the summary)."""
    stores = remote.drop_duplicates(["tissue", "orientation", "chunk", "shard", "codec"])
    sizes = sparse_only(sizes)
    stores = stores.merge(
        sizes[["tissue", "orientation", "chunk", "shard", "codec", "n_obs", "n_vars", "nnz"]],
        on=["tissue", "orientation", "chunk", "shard", "codec"],
    )
    found = {}
    for (orientation, codec), rows in stores.groupby(["orientation", "codec"]):
        pointers = rows["n_obs" if orientation == "cells" else "n_vars"] + 1
        found[(str(orientation), str(codec))] = Encoding(
            float(((rows["x_bytes"] - rows["indptr_bytes"]) / rows["nnz"]).median()),
            float((rows["indptr_bytes"] / pointers).median()),
            float((rows["decode_seconds"] / rows["x_bytes"]).median()),
        )
    return found


def calibrate(
    remote: pd.DataFrame, sizes: pd.DataFrame, found: Mapping[tuple[str, str], Encoding]
) -> dict[tuple[str, str, bool], int]:
    """(pattern, orientation, sharded) -> the requests a reader makes beyond the layout's
    ranges (the median over the study's stores of measured minus predicted)."""
    rows = remote.merge(
        sparse_only(sizes)[
            ["tissue", "orientation", "chunk", "shard", "codec", "n_obs", "n_vars", "nnz"]
        ],
        on=["tissue", "orientation", "chunk", "shard", "codec"],
    )
    rows = rows[rows["pattern"].isin(X_PATTERNS)].drop_duplicates(
        ["tissue", "orientation", "chunk", "shard", "codec", "pattern"]
    )
    extra: dict[tuple[str, str, bool], list[int]] = {}
    for row in rows.itertuples():
        layout = Layout(row.orientation, int(row.chunk), int(row.shard), row.codec)
        atlas = Atlas(int(row.n_obs), int(row.n_vars), int(row.nnz))
        encoding = found[(row.orientation, row.codec)]
        plain = predict_traffic(atlas, layout, row.pattern, encoding)
        key = (row.pattern, row.orientation, row.shard > 1)
        extra.setdefault(key, []).append(int(row.requests) - plain.requests)
    return {key: int(round(float(np.median(values)))) for key, values in extra.items()}
