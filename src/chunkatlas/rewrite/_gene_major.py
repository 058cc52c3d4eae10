"""The gene-major writer: a cell-major (CSR) matrix re-written as anndata's ``csc_matrix``, out of
core, so that one gene is one contiguous range of every array.

Two passes over the source's blocks of cells, whatever its size:

1. count each gene's stored values (the column pointers of the result), and for presets that
   cast, the integer type the values fit;
2. split each block, turned gene-major, by groups of genes holding at most ``group_values``
   values in all, and append each group's part to a file of its own on local disk.

Then each group's file is read once, ordered by gene (a stable sort: cells stay in order within
a gene) and appended to ``data`` and ``indices``, whole stored objects at a time.  Memory holds
one block of cells, or one group of genes: it does not grow with the number of cells.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import zarr

from chunkatlas.rewrite._geometry import IntegerRange, index_cast

#: Values of one gene group held in memory while it is ordered (about 24 bytes each, sort
#: included): 8M values, some 200 MB.
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
        self.unit = (array.shards or array.chunks)[0]
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


def spill_record(shape: tuple[int, int], dtype) -> np.dtype:
    """A spilled value: its gene, its cell and itself, in the narrowest types that hold them
    (the spill takes 10 bytes a float32 value up to 65,536 genes and 4 billion cells)."""
    n_obs, n_vars = shape
    gene = "<u2" if n_vars <= 1 << 16 else "<u4"
    cell = "<u4" if n_obs <= 1 << 32 else "<i8"
    return np.dtype([("gene", gene), ("cell", cell), ("value", dtype)])


def spill_by_group(
    blocks: Iterable[sp.csr_matrix], groups: list[tuple[int, int]], folder: Path, record: np.dtype
) -> None:
    r"""Pass 2: each block turned gene-major, its part of each gene group appended to that
    group's file as ``record``\ s (gene, cell, value)."""
    first_cell = 0
    for block in blocks:
        by_gene = block.tocsc()  # cells ascending within each gene
        by_gene.sort_indices()
        for number, (start, stop) in enumerate(groups):
            low, high = by_gene.indptr[start], by_gene.indptr[stop]
            if low == high:
                continue
            part = np.empty(high - low, dtype=record)
            part["gene"] = np.repeat(
                np.arange(start, stop), np.diff(by_gene.indptr[start : stop + 1])
            )
            part["cell"] = by_gene.indices[low:high].astype(np.int64) + first_cell
            part["value"] = by_gene.data[low:high]
            with open(folder / f"{number}.bin", "ab") as handle:
                part.tofile(handle)
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
    with tempfile.TemporaryDirectory(prefix="chunkatlas-genes-", dir=scratch) as folder:
        record = spill_record(shape, dtype)
        spill_by_group(blocks(), groups, Path(folder), record)
        for number in range(len(groups)):
            path = Path(folder) / f"{number}.bin"
            if not path.exists():
                continue
            part = np.fromfile(path, dtype=record)
            path.unlink()  # the disk holds at most the spill of what is not yet written
            order = np.argsort(part["gene"], kind="stable")
            data.add(part["value"][order])
            indices.add(part["cell"][order].astype(np.int64))
    data.close()
    indices.close()
