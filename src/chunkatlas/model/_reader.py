"""How a reader spends a read's time on the network: its requests in round trips, its bytes in
responses streamed side by side.

A reader keeps up to ``concurrency`` objects in flight while it reads one array, and reads a
sparse X's arrays one after another (``phases``: plain anndata reads ``indptr``, then ``data``,
then ``indices``).  The requests of one object follow one another: a shard read in part is its
index, then its runs of chunks, one request after another (zarr 3.4), so a read of R requests
from O objects costs about ``phases x ceil(O / (phases x concurrency)) x R / O`` round trips
(unsharded, O = R), and its bytes stream over as many responses at once as it has objects in
flight, each at one response's bandwidth: ``bytes / in_flight`` is the time the bytes take at
one response's speed.  A whole array in one shard is one response at a time, however many
requests it takes.  A
reader that reads an object in ranges (``parts``: chunkatlas's remote reads, 2 MiB ranges,
eight of an object in flight) keeps more responses in flight on the same objects.  Opening a
store reads obs and var one array after another (OPEN_ARRAYS of them), each array's chunks
side by side.

A read across the grain (genes of a cell-major store, a block of cells of a gene-major one)
fetches all of X; plain anndata then selects what was asked in memory, work that grows with
the bytes read (``selects_in_memory``).

These are the terms of the cost model (:mod:`._fit`): seconds per round trip and seconds per
byte of one response are the network's, seconds per byte selected the reader's machine; the
reader decides how many of each a read costs.  That is what lets a model fitted on one
reader's reads answer for another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: zarr's ``async.concurrency`` default: the requests one array's read keeps in flight.
ZARR_CONCURRENCY = 10
#: Arrays of obs and var an open reads, one after another (the Census-shaped demo's: the
#: study's tissues have them).
OPEN_ARRAYS = 18
#: chunkatlas's remote reads: objects above PART_BYTES in ranges of it, this many in flight.
PART_BYTES = 2 * 2**20
PARTS_IN_FLIGHT = 8


@dataclass(frozen=True)
class Reader:
    """How a reader reads a sparse X over the network (module doc)."""

    name: str
    concurrency: int  # objects in flight within one array's read
    phases: int  # arrays of a sparse X read one after another
    part_bytes: float | None  # objects larger than this are read in ranges, several at once
    description: str
    selects_in_memory: bool = True  # reads across the grain whole, then selects in memory

    def in_flight(
        self,
        requests: float,
        bytes_: float,
        phases: int | None = None,
        objects: float | None = None,
    ) -> float:
        """Responses streaming at once during one phase of a read of ``requests`` requests
        from ``objects`` objects (None: one object per request); ``phases``: arrays read one
        after another (None: X's)."""
        objects = requests if objects is None else min(objects, requests)
        per_phase = max(1.0, objects / (phases or self.phases))
        streams = min(self.concurrency, per_phase)
        if self.part_bytes:
            object_bytes = bytes_ / max(requests, 1.0)
            streams *= min(PARTS_IN_FLIGHT, max(1.0, math.ceil(object_bytes / self.part_bytes)))
        return max(1.0, streams)

    def rounds(
        self, requests: float, phases: int | None = None, objects: float | None = None
    ) -> float:
        """Round trips of a read of ``requests`` requests from ``objects`` objects (None: one
        object per request) of ``phases`` arrays read one after another (None: X's)."""
        phases = phases or self.phases
        if requests <= phases:
            return float(requests)
        objects = requests if objects is None else max(1.0, min(objects, requests))
        return phases * math.ceil(objects / (phases * self.concurrency)) * requests / objects


READERS = {
    "anndata": Reader(
        "anndata",
        ZARR_CONCURRENCY,
        3,
        None,
        "plain anndata/zarr: indptr, then data, then indices, 10 objects in flight (a "
        "shard's requests one after another), each object in one GET",
    ),
    "chunkatlas": Reader(
        "chunkatlas",
        ZARR_CONCURRENCY,
        2,
        PART_BYTES,
        "chunkatlas's analysis: indptr, then data and indices together, 10 objects in "
        "flight, objects above 2 MiB in ranges, 8 at once",
        selects_in_memory=False,
    ),
}
DEFAULT_READER = "anndata"


def reader_named(name: str) -> Reader:
    from chunkatlas.errors import ChunkatlasError

    if name not in READERS:
        raise ChunkatlasError(f"reader {name!r} is not one of {', '.join(READERS)}")
    return READERS[name]


#: The patterns that want cells (the rest want genes); ``open`` and ``all_x`` want neither.
_CELL_PATTERNS = ("cell_block",)
_GENE_PATTERNS = ("one_gene", "fifty_genes")


def across_the_grain(pattern: str, orientation: str) -> bool:
    """Whether ``pattern`` on a store of ``orientation`` scatters what it wants over all of X."""
    if orientation == "cells":
        return pattern in _GENE_PATTERNS
    return pattern in _CELL_PATTERNS


def read_features(rows: pd.DataFrame, reader: Reader) -> np.ndarray:
    """(round trips, bytes at one response's speed, bytes selected in memory) of each row's
    read by ``reader``, from its pattern, orientation, requests, bytes and ``objects_read``
    (the objects its requests fetch from, :class:`~._traffic.Traffic`); ``open`` reads obs
    and var arrays one after another (OPEN_ARRAYS).

    A row with no ``objects_read`` (a table measured before it was recorded) counts one
    object per request, and a part of a shard one more round trip per array: its index."""
    orientations = rows["orientation"] if "orientation" in rows else ["cells"] * len(rows)
    shards = rows["shard"] if "shard" in rows else [1] * len(rows)
    objects_read = rows["objects_read"] if "objects_read" in rows else [math.nan] * len(rows)
    features = []
    for pattern, orientation, shard, requests, nbytes, objects in zip(
        rows["pattern"],
        orientations,
        shards,
        rows["requests"].astype(float),
        rows["bytes"].astype(float),
        objects_read,
        strict=True,
    ):
        if pattern == "open":
            streams = reader.in_flight(requests, nbytes, OPEN_ARRAYS)
            features.append((reader.rounds(requests, OPEN_ARRAYS), nbytes / streams, 0.0))
            continue
        across = across_the_grain(pattern, orientation)
        selected = nbytes if reader.selects_in_memory and across else 0.0
        if math.isnan(objects):
            rounds = reader.rounds(requests)
            if shard > 1 and not across and pattern != "all_x":
                rounds += reader.phases  # part of a shard: its index first
            streams = reader.in_flight(requests, nbytes)
        else:
            rounds = reader.rounds(requests, objects=objects)
            streams = reader.in_flight(requests, nbytes, objects=objects)
        features.append((rounds, nbytes / streams, selected))
    return np.asarray(features, dtype=float).reshape(len(rows), 3)
