"""The gene-major writer: a cell-major (CSR) matrix re-written as anndata's ``csc_matrix``, out of
core, so that one gene is one contiguous range of every array.

Two passes over the source's blocks of cells, whatever its size:

1. count each gene's stored values (the column pointers of the result), and for presets that
   cast, the integer type the values fit;
2. split each block, turned gene-major, by groups of genes holding at most ``group_values``
   values in all, and append each group's part, compressed, to a file of its own on local
   disk (the spill: each gene's count, cells as deltas, values in the type they were cast to;
   about a byte a value of counts, against 10 as plain records).

Then each group's file is read once, ordered by gene (each block's run of a gene after the
runs of earlier blocks, so cells stay in order within a gene) and appended to ``data`` and
``indices``, whole stored objects at a time.  Memory holds one block of cells, or one group of
genes: it does not grow with the number of cells.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numcodecs
import numpy as np
import scipy.sparse as sp
import zarr

from chunkatlas.rewrite._geometry import IntegerRange, index_cast
from chunkatlas.store import stored_grid

#: Values of one gene group held in memory while it is ordered (about 12 bytes each, and one
#: block's part of it): 8M values, some 100 MB.
GROUP_VALUES = 1 << 23


def gene_groups(counts: np.ndarray, group_values: int) -> list[tuple[int, int]]:
    """Consecutive ranges of genes, each holding at most ``group_values`` values (a gene with
    more is a group of its own)."""
    groups, start, held = [], 0, 0
    for gene, count in enumerate(counts.tolist()):
        if held + count > group_values and gene > start:
            groups.append((start, gene))
            start, held = gene, 0
        held += count
    if start < len(counts):
        groups.append((start, len(counts)))
    return groups


class Appender:
    """Appends to a 1-D zarr array of known length, writing whole stored objects (shards, or
    chunks) at a time, so that no object is written twice."""

    def __init__(self, array: zarr.Array) -> None:
        self.array = array
        self.unit = stored_grid(array)[0]
        self.position = 0
        self.pending: list[np.ndarray] = []
        self.held = 0

    def add(self, values: np.ndarray) -> None:
        self.pending.append(values)
        self.held += len(values)
        if self.held >= self.unit:
            self._write(self.held - self.held % self.unit)

    def close(self) -> None:
        self._write(self.held)
        if self.position != self.array.shape[0]:
            raise AssertionError(f"wrote {self.position} of {self.array.shape[0]} values")

    def _write(self, count: int) -> None:
        if count == 0:
            return
        buffered = np.concatenate(self.pending)
        self.array[self.position : self.position + count] = buffered[:count]
        self.position += count
        rest = buffered[count:]
        self.pending, self.held = ([rest] if len(rest) else []), len(rest)


def count_genes(blocks: Iterable[sp.csr_matrix], n_vars: int, values: IntegerRange | None):
    """Pass 1: each gene's stored values, and the range of the values where a preset casts."""
    counts = np.zeros(n_vars, dtype=np.int64)
    for block in blocks:
        counts += np.bincount(block.indices, minlength=n_vars)
        if values is not None:
            values.add(block.data)
    return counts


#: How a spilled part is compressed: zstd over bit-planes (cell offsets within a gene rise
#: slowly and counts are small integers, so most high bits are zero), at a fast level.
SPILL_CODEC = numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.BITSHUFFLE)


def spill_types(n_obs: int, dtype, cast: np.dtype | None) -> tuple[np.dtype, np.dtype]:
    """The types a spilled part stores its cells (as offsets from the previous cell of the
    gene: small, whatever the atlas's size) and its values (``cast``, the narrower integer type
    they all fit, else their own) in."""
    return np.dtype("<u4" if n_obs <= 1 << 32 else "<i8"), np.dtype(cast or dtype)


def pack_part(counts: np.ndarray, cells: np.ndarray, values: np.ndarray, types) -> bytes:
    """One block's part of a gene group, compressed: each gene's count of values, then each
    value's cell as the difference from the one before (ordered by gene, cells ascending in
    each: small, and wrapping around exactly at a gene's start), then the values (``types``
    from :func:`spill_types`)."""
    cell_type, value_type = types
    deltas = np.diff(cells, prepend=0).astype(cell_type)
    frames = [counts.astype("<u4"), deltas, values.astype(value_type)]
    packed = [SPILL_CODEC.encode(np.ascontiguousarray(f)) for f in frames]
    head = np.array([len(p) for p in packed], dtype="<u8")  # the frames' sizes
    return head.tobytes() + b"".join(packed)


def unpack_parts(buffer: bytes, types, dtype) -> Iterator[tuple[np.ndarray, ...]]:
    """The parts :func:`pack_part` wrote in ``buffer``, in order: each as (count of values of
    each gene of the group, cells, values)."""
    cell_type, value_type = types
    position = 0
    while position < len(buffer):
        sizes = np.frombuffer(buffer, "<u8", 3, position).tolist()
        position += 24
        frames = []
        for size, kind in zip(sizes, ("<u4", cell_type, value_type), strict=True):
            encoded = buffer[position : position + size]
            frames.append(np.frombuffer(SPILL_CODEC.decode(encoded), kind))
            position += size
        counts, deltas, values = frames
        cells = np.cumsum(deltas, dtype=cell_type)
        yield counts.astype(np.int64), cells, values.astype(dtype)


def gene_ordered(parts, counts: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """The values and cells of a gene group's ``parts`` (blocks of cells in order, each by gene)
    ordered by gene, cells ascending within each: each part's run of a gene placed after the
    runs before it (``counts``: the group's values per gene).  No sort: memory is the result
    and one part."""
    first = np.cumsum(counts) - counts  # where each gene's values start
    filled = np.zeros_like(first)
    values, cells = np.empty(int(counts.sum()), dtype), np.empty(int(counts.sum()), np.int64)
    for part_counts, part_cells, part_values in parts:
        runs = np.cumsum(part_counts) - part_counts
        within = np.arange(len(part_cells)) - np.repeat(runs, part_counts)
        place = np.repeat(first + filled, part_counts) + within
        values[place], cells[place] = part_values, part_cells
        filled += part_counts
    return values, cells


def spill_by_group(
    blocks: Iterable[sp.csr_matrix], groups: list[tuple[int, int]], folder: Path, types
) -> None:
    """Pass 2: each block turned gene-major, its part of each gene group appended to that
    group's file, compressed (:func:`pack_part`)."""
    first_cell = 0
    for block in blocks:
        by_gene = block.tocsc()  # cells ascending within each gene
        by_gene.sort_indices()
        for number, (start, stop) in enumerate(groups):
            low, high = by_gene.indptr[start], by_gene.indptr[stop]
            if low == high:
                continue
            cells = by_gene.indices[low:high].astype(np.int64) + first_cell
            counts = np.diff(by_gene.indptr[start : stop + 1])
            with open(folder / f"{number}.bin", "ab") as handle:
                handle.write(pack_part(counts, cells, by_gene.data[low:high], types))
        first_cell += block.shape[0]


def write_csc(
    parent: zarr.Group,
    name: str,
    shape: tuple[int, int],
    dtype: np.dtype,
    blocks: Callable[[], Iterator[sp.csr_matrix]],
    chunks: tuple[int],
    settings: Callable[..., dict],
    *,
    cast_values: bool,
    group_values: int = GROUP_VALUES,
    scratch: str | None = None,
) -> None:
    """Write the matrix whose blocks of cells ``blocks()`` yields (CSR, in order; called once per
    pass) as anndata's csc_matrix group ``name``: ``data``, ``indices`` (cell numbers) and
    ``indptr`` (gene offsets); ``settings(chunks, shape, dtype=, role=, cast=)`` gives each
    array's geometry and codecs.  ``scratch``: where the gene groups are spilled (the system's
    temporary folder by default)."""
    n_obs, n_vars = shape
    values = IntegerRange(dtype) if cast_values else None
    counts = count_genes(blocks(), n_vars, values)
    nnz = int(counts.sum())
    group = parent.create_group(name)
    group.attrs.update(
        {"encoding-type": "csc_matrix", "encoding-version": "0.1.0", "shape": [n_obs, n_vars]}
    )

    def create(key, length, array_dtype, role, cast=None, *, grows=True):
        # Shards of data and indices as the cell-major writer makes them (it cannot know their
        # length): ``shard`` chunks each, so both orientations cut objects alike.
        known = None if grows else (length,)
        kwargs = settings(chunks, known, dtype=np.dtype(array_dtype), role=role, cast=cast)
        return group.create_array(key, shape=(length,), dtype=array_dtype, **kwargs)

    data = Appender(create("data", nnz, dtype, "values", values.cast() if values else None))
    indices = Appender(create("indices", nnz, np.int64, "indices", index_cast(n_obs)))
    indptr = create("indptr", n_vars + 1, np.int64, "index", grows=False)
    indptr[:] = np.concatenate([[0], np.cumsum(counts)])
    groups = gene_groups(counts, group_values)
    types = spill_types(n_obs, dtype, values.cast() if values else None)
    with tempfile.TemporaryDirectory(prefix="chunkatlas-genes-", dir=scratch) as folder:
        spill_by_group(blocks(), groups, Path(folder), types)
        for number, (start, stop) in enumerate(groups):
            path = Path(folder) / f"{number}.bin"
            if not path.exists():
                continue
            spilled = path.read_bytes()
            path.unlink()  # the disk holds at most the spill of what is not yet written
            parts = unpack_parts(spilled, types, dtype)
            group_values, group_cells = gene_ordered(parts, counts[start:stop], dtype)
            data.add(group_values)
            indices.add(group_cells)
    data.close()
    indices.close()
