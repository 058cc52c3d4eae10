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
import scipy.optimize

from chunkatlas.study import PANEL, cell_block_size

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
    requests: float  # a user's read at a random place: the mean over its placements
    bytes: float
    objects: int  # objects of X's arrays in the store
    objects_read: float = math.nan  # objects the read fetches from (its requests, unsharded)


def chunk_values(atlas: Atlas, layout: Layout) -> int:
    """Values per chunk of ``data`` and ``indices`` (and entries per chunk of ``indptr``): about
    ``chunk`` cells' (or genes') values, as the writer chunks them."""
    units = atlas.n_obs if layout.orientation == "cells" else atlas.n_vars
    return max(1, math.ceil(atlas.nnz / max(units, 1) * layout.chunk))


#: zarr (3.4) reads the chunks of one shard in one request when the bytes between them are at
#: most this many, up to SHARD_COALESCE_BYTES per request (its ``array.sharding_coalesce_*``).
SHARD_GAP_BYTES = 2**20
SHARD_COALESCE_BYTES = 16 * 2**20


def _array_reads(
    length: int,
    chunk: int,
    shard: int,
    ranges: Iterable[tuple[int, int]],
    *,
    grows: bool = False,
    chunk_bytes: float = 0.0,
):
    """(requests, chunks fetched, shard indexes fetched, objects, objects read) of reading
    ``ranges`` of a 1-D array of ``length`` values in chunks of ``chunk`` (of ``chunk_bytes``
    stored bytes), ``shard`` chunks per object.  ``grows``: written without a known length
    (``data`` and ``indices``, appended block by block), so every shard has room for
    ``shard`` chunks; otherwise shards hold no more chunks than the array has, and an array of
    one chunk is not sharded.

    As zarr reads a sharded array: a full shard wanted whole is one request; any other shard
    (part of it wanted, or the array's last, shorter shard) its index, then one request per
    group of wanted chunks no more than SHARD_GAP_BYTES apart (the chunks between fetched too),
    of at most SHARD_COALESCE_BYTES.
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
        return len(touched), len(touched), 0, objects, len(touched)
    requests = indexes = fetched = 0
    by_shard: dict[int, list[int]] = {}
    for index in sorted(touched):
        by_shard.setdefault(index // per_object, []).append(index)
    gap = SHARD_GAP_BYTES / chunk_bytes if chunk_bytes else 0  # chunks
    most = max(1, SHARD_COALESCE_BYTES / chunk_bytes) if chunk_bytes else math.inf
    for number, chunks in by_shard.items():
        full = (number + 1) * per_object <= n_chunks
        if full and len(chunks) == per_object:
            requests, fetched = requests + 1, fetched + per_object
            continue
        first = chunks[0]
        for previous, index in zip(chunks, chunks[1:], strict=False):
            if index - previous - 1 > gap or index - first + 1 > most:
                requests, fetched = requests + 1, fetched + previous - first + 1
                first = index
        requests, fetched = requests + 2, fetched + chunks[-1] - first + 1  # and the index
        indexes += 1
    return requests, fetched, indexes, objects, len(by_shard)


#: A user's read at a random place is predicted as the mean over this many placements,
#: evenly spaced over one object of ``data`` (a chunk, or a whole shard) and within a chunk.
PLACEMENTS = 8


def pattern_placements(atlas: Atlas, layout: Layout, pattern: str) -> list[tuple[list, list]]:
    """The (pointer ranges, value ranges) of a user's read of ``pattern`` at each of
    PLACEMENTS places: all of X where the orientation scatters what the pattern wants; a block
    of cells starting anywhere, or genes of average size starting anywhere, where it keeps
    them together (the study reads such blocks and genes, :func:`chunkatlas.study.
    pattern_selection`)."""
    pointers = atlas.n_obs + 1 if layout.orientation == "cells" else atlas.n_vars + 1
    everything = [([(0, pointers)], [(0, atlas.nnz)])]
    if pattern == "cell_block" and layout.orientation == "cells":
        cells = cell_block_size(atlas.n_obs)
        per_unit, firsts = atlas.nnz / atlas.n_obs, [0]
    elif pattern in ("one_gene", "fifty_genes") and layout.orientation == "genes":
        cells = 1
        per_unit = atlas.nnz / atlas.n_vars
        count = 1 if pattern == "one_gene" else min(PANEL, atlas.n_vars)
        firsts = np.linspace(0, atlas.n_vars - 1, count + 2)[1:-1].astype(int).tolist()
    else:
        return everything
    length = max(1, round(per_unit * cells))
    chunk = chunk_values(atlas, layout)
    placements = []
    for k in range(PLACEMENTS):
        # evenly over a shard's chunks and over a chunk's values both: a sharded store's
        # block straddles two chunks as often as an unsharded one's
        shift = chunk * (k * layout.shard // PLACEMENTS + k / PLACEMENTS)
        value_ranges, pointer_ranges = [], []
        for first in firsts:
            start = min(round(first * per_unit + shift), max(0, atlas.nnz - length))
            unit = min(int(start / per_unit), pointers - cells - 1)
            value_ranges.append((start, start + length))
            pointer_ranges.append((unit, unit + cells + 1))
        placements.append((pointer_ranges, value_ranges))
    return placements


@dataclass(frozen=True)
class Encoding:
    """What a codec stores and costs, per orientation, measured on a study's stores: stored
    bytes per value and per pointer, and the seconds of a local decode pass of X, as a time
    per stored byte plus a time per chunk (:func:`fit_decode`)."""

    bytes_per_value: float  # stored bytes of data and indices per stored value
    bytes_per_pointer: float  # stored bytes of indptr per entry
    decode_seconds_per_byte: float  # one local decode pass of X, per stored byte
    decode_seconds_per_chunk: float = 0.0  # ... and per chunk decoded

    def x_bytes(self, atlas: Atlas, orientation: str) -> float:
        """Stored bytes of X of ``atlas`` in this encoding."""
        pointers = (atlas.n_obs if orientation == "cells" else atlas.n_vars) + 1
        return atlas.nnz * self.bytes_per_value + pointers * self.bytes_per_pointer

    def decode_seconds(self, atlas: Atlas, layout: Layout) -> float:
        """Seconds of one local decode pass of X of ``atlas`` written in ``layout``."""
        return (
            self.x_bytes(atlas, layout.orientation) * self.decode_seconds_per_byte
            + x_chunks(atlas, layout) * self.decode_seconds_per_chunk
        )

    def describe(self) -> str:
        """E.g. "packed decodes 140 MB/s + 0.4 ms per chunk, 1.1 B per value"."""
        per_byte = self.decode_seconds_per_byte
        rate = math.inf if per_byte == 0 else 1e-6 / per_byte
        per_chunk = (
            f" + {self.decode_seconds_per_chunk * 1e3:.2g} ms per chunk"
            if self.decode_seconds_per_chunk
            else ""
        )
        return f"{rate:.3g} MB/s{per_chunk}, {self.bytes_per_value:.2f} B per value"


def x_chunks(atlas: Atlas, layout: Layout) -> int:
    """Chunks of X's ``data``, ``indices`` and ``indptr`` (inner chunks when sharded)."""
    size = chunk_values(atlas, layout)
    pointers = (atlas.n_obs if layout.orientation == "cells" else atlas.n_vars) + 1
    return 2 * math.ceil(atlas.nnz / size) + math.ceil(pointers / size)


def predict_traffic(
    atlas: Atlas,
    layout: Layout,
    pattern: str,
    encoding: Encoding,
    extra_requests: int = 0,
    ranges: tuple[list, list] | None = None,
) -> Traffic:
    """Requests and bytes of ``pattern`` on ``layout`` stored in ``encoding``, plus the
    reader's ``extra_requests``: of the (pointer ranges, value ranges) a measured read asked
    for (``ranges``, the study's record of it), else of a user's read at a random place (the
    mean over :func:`pattern_placements`)."""
    placements = [ranges] if ranges is not None else pattern_placements(atlas, layout, pattern)
    reads = [_read(atlas, layout, encoding, *placement) for placement in placements]
    requests = float(np.mean([r[0] for r in reads]))
    if ranges is not None:
        requests = int(requests)
    # the reader's own requests (e.g. a pointer it reads again) each fetch from an object
    objects_read = float(np.mean([r[3] for r in reads])) + extra_requests
    return Traffic(
        max(0, requests + extra_requests),
        float(np.mean([r[1] for r in reads])),
        reads[0][2],
        max(1.0, min(objects_read, requests + extra_requests)),
    )


def recorded_ranges(recorded) -> tuple[list, list] | None:
    """The (pointer ranges, value ranges) of a measured read from the study's ``ranges``
    record; None for a read of whole arrays, or with no record (a user's read at a random
    place is then predicted)."""
    from chunkatlas.study import parse_ranges

    return None if recorded is None else parse_ranges(recorded)


def _read(
    atlas: Atlas, layout: Layout, encoding: Encoding, pointer_ranges: list, value_ranges: list
) -> tuple[int, float, int]:
    """(requests, bytes, objects of X, objects read) of reading these ranges of X's
    arrays."""
    size = chunk_values(atlas, layout)
    pointers = atlas.n_obs + 1 if layout.orientation == "cells" else atlas.n_vars + 1
    index_bytes = INDEX_BYTES_PER_CHUNK * layout.shard + INDEX_CHECKSUM_BYTES
    requests = objects = read = 0
    fetched = 0.0
    per_value = encoding.bytes_per_value / 2  # data and indices share it, about evenly
    for _ in ("data", "indices"):  # the same ranges of both
        reqs, chunks, indexes, objs, touched = _array_reads(
            atlas.nnz, size, layout.shard, value_ranges, grows=True, chunk_bytes=size * per_value
        )
        fetched += min(chunks * size, atlas.nnz) * per_value + indexes * index_bytes
        requests, objects, read = requests + reqs, objects + objs, read + touched
    reqs, chunks, indexes, objs, touched = _array_reads(
        pointers, size, layout.shard, pointer_ranges, chunk_bytes=size * encoding.bytes_per_pointer
    )
    fetched += min(chunks * size, pointers) * encoding.bytes_per_pointer + indexes * index_bytes
    return requests + reqs, fetched, objects + objs, read + touched


def sparse_only(sizes: pd.DataFrame) -> pd.DataFrame:
    """The stores of sparse X: the traffic model follows their arrays (dense X has no nnz)."""
    return sizes[pd.to_numeric(sizes["nnz"], errors="coerce").notna()]


def _store_rows(remote: pd.DataFrame, sizes: pd.DataFrame) -> pd.DataFrame:
    """One row per store of ``remote`` with its geometry, n_obs, n_vars and nnz (from
    ``sizes``, the summary)."""
    keys = ["tissue", "orientation", "chunk", "shard", "codec"]
    stores = remote.drop_duplicates(keys)
    return stores.merge(sparse_only(sizes)[[*keys, "n_obs", "n_vars", "nnz"]], on=keys)


def fit_decode(stores: pd.DataFrame) -> tuple[float, dict[tuple[str, str], float]]:
    """(seconds per chunk, {(orientation, codec): seconds per stored byte}) of the stores'
    local decode passes: each store's ``decode_seconds`` = chunks x t_chunk + x_bytes x
    t_byte[orientation, codec], by least squares relative to each store's seconds, all >= 0.
    One time per chunk for every codec (zarr's own work per chunk); when the stores' chunk
    counts cannot tell it from their bytes, it is 0 and each codec gets its median per byte."""
    stores = stores[np.isfinite(stores["decode_seconds"]) & (stores["decode_seconds"] > 0)]
    kinds = sorted(
        set(zip(stores["orientation"].astype(str), stores["codec"].astype(str), strict=True))
    )
    if stores.empty:
        return 0.0, {}
    chunks = np.array(
        [
            x_chunks(Atlas(int(r.n_obs), int(r.n_vars), int(r.nnz)), _layout(r))
            for r in stores.itertuples()
        ],
        dtype=float,
    )
    per_byte = np.column_stack(
        [
            np.where((stores["orientation"] == o) & (stores["codec"] == c), stores["x_bytes"], 0.0)
            for o, c in kinds
        ]
    )
    x = np.column_stack([chunks, per_byte])
    seconds = stores["decode_seconds"].to_numpy(dtype=float)
    scaled = x / np.abs(x).max(axis=0)
    if np.linalg.matrix_rank(scaled, tol=1e-6) < x.shape[1]:
        median = (
            (stores["decode_seconds"] / stores["x_bytes"])
            .groupby([stores["orientation"], stores["codec"]])
            .median()
        )
        return 0.0, {(str(o), str(c)): float(v) for (o, c), v in median.items()}
    coefficients, _ = scipy.optimize.nnls(x / seconds[:, None], np.ones(len(seconds)))
    return float(coefficients[0]), dict(zip(kinds, map(float, coefficients[1:]), strict=True))


def _layout(row) -> Layout:
    return Layout(row.orientation, int(row.chunk), int(row.shard), row.codec)


def encodings(remote: pd.DataFrame, sizes: pd.DataFrame) -> dict[tuple[str, str], Encoding]:
    """(orientation, codec) -> :class:`Encoding`: bytes per value and per pointer (medians
    over the study's stores), decode costs from :func:`fit_decode`.  ``sizes`` has each
    store's geometry with ``nnz`` (from the summary)."""
    stores = _store_rows(remote, sizes)
    per_chunk, per_byte = fit_decode(stores)
    found = {}
    for (orientation, codec), rows in stores.groupby(["orientation", "codec"]):
        pointers = rows["n_obs" if orientation == "cells" else "n_vars"] + 1
        found[(str(orientation), str(codec))] = Encoding(
            float(((rows["x_bytes"] - rows["indptr_bytes"]) / rows["nnz"]).median()),
            float((rows["indptr_bytes"] / pointers).median()),
            per_byte.get((str(orientation), str(codec)), math.nan),
            per_chunk,
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
        ranges = recorded_ranges(getattr(row, "ranges", None))
        plain = predict_traffic(atlas, layout, row.pattern, encoding, ranges=ranges)
        key = (row.pattern, row.orientation, row.shard > 1)
        extra.setdefault(key, []).append(int(row.requests) - plain.requests)
    return {key: int(round(float(np.median(values)))) for key, values in extra.items()}
