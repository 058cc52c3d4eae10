"""What each access pattern reads of X: the cells and genes a user selects
(:func:`pattern_selection`), the ranges of X's stored arrays that selection covers
(:func:`covered`), recorded beside the traffic it cost so that a model of the layout can
predict that traffic exactly, and the read itself (:func:`read_pattern`).

A user's block of cells falls anywhere in the tissue, usually across a chunk boundary, and a
user's gene is any gene, a few of them holding many times the mean values.  The selections
here are drawn at random, as users' are, but from a seed fixed by the tissue's shape and the
pattern (:data:`SELECTION_SEED` mixed in): every layout of one tissue is read at the same cells
and genes, so layouts compare on the same reads, and every repeat of a read is the same read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import is_sparse, matrix_shape, stored_grid

PATTERNS = ("open", "one_gene", "fifty_genes", "cell_block", "all_x")
CELL_BLOCK = 1000  # the most cells cell_block reads
PANEL = 50  # the genes fifty_genes reads (all of them in a tissue of fewer genes)
#: Mixed into every selection's seed with the tissue's shape and the pattern's name: a fixed
#: number, so the selections are the same in every run; another number draws other reads.
SELECTION_SEED = 20_240_611


def cell_block_size(n_obs: int) -> int:
    """Cells the cell_block pattern reads: a tenth of the tissue, at least 1 and at most
    CELL_BLOCK, so that it stays a block and never becomes all of X in a small tissue."""
    return max(1, min(CELL_BLOCK, n_obs // 10))


@dataclass(frozen=True)
class Selection:
    """The part of X a pattern reads: a block of cells and the genes, each a ``range`` where
    contiguous, else a sorted tuple of distinct genes."""

    cells: range
    genes: range | tuple[int, ...]

    def index(self, n_obs: int, n_vars: int) -> tuple:
        """The selection as an index of X: slices (``:`` for a whole axis), the listed genes as
        an integer array (anndata reads a Python list of genes as all of X)."""

        def axis(part, length):
            if isinstance(part, range):
                return slice(None) if part == range(length) else slice(part.start, part.stop)
            return np.array(part, dtype=np.int64)

        return axis(self.cells, n_obs), axis(self.genes, n_vars)


def pattern_selection(pattern: str, n_obs: int, n_vars: int) -> Selection:
    """The cells and genes ``pattern`` reads of a tissue of ``n_obs`` cells and ``n_vars``
    genes, the same for every store of that shape: ``cell_block``, :func:`cell_block_size`
    cells from an offset drawn uniformly; ``one_gene``, a gene drawn uniformly; ``fifty_genes``,
    ``min(PANEL, n_vars)`` distinct genes drawn uniformly, sorted; ``all_x``, everything;
    ``open``, nothing of X.  Drawn with :func:`numpy.random.default_rng` seeded by
    :data:`SELECTION_SEED`, ``n_obs``, ``n_vars`` and the pattern's name."""
    if pattern not in PATTERNS:
        raise ChunkatlasError(f"unknown access pattern {pattern!r}: expected one of {PATTERNS}")
    if n_obs < 0 or n_vars < 0:
        raise ChunkatlasError(f"a tissue has no negative size: {n_obs} cells, {n_vars} genes")
    rng = np.random.default_rng([SELECTION_SEED, n_obs, n_vars, *pattern.encode()])
    if pattern == "open":
        return Selection(range(0), range(0))
    if pattern == "all_x":
        return Selection(range(n_obs), range(n_vars))
    if pattern == "cell_block":
        size = min(cell_block_size(n_obs), n_obs)
        start = int(rng.integers(0, n_obs - size + 1))
        return Selection(range(start, start + size), range(n_vars))
    panel = min(1 if pattern == "one_gene" else PANEL, n_vars)
    genes = rng.choice(n_vars, size=panel, replace=False)
    return Selection(range(n_obs), tuple(sorted(int(g) for g in genes)))


def along_the_grain(pattern: str, encoding: str) -> bool:
    """Whether ``pattern`` reads ranges of a sparse X stored as ``encoding``: a block of cells
    of a cell-major (CSR) store, or genes of a gene-major (CSC) one.  Every other read of X
    fetches its arrays whole."""
    if encoding == "csr_matrix":
        return pattern == "cell_block"
    return encoding == "csc_matrix" and pattern in ("one_gene", "fifty_genes")


def _major_ranges(selection: Selection, encoding: str) -> list[tuple[int, int]]:
    """The runs of the store's major axis (cells of CSR, genes of CSC) a read along the grain
    wants: the block of cells as one, each gene as its own (none merged)."""
    if encoding == "csr_matrix":
        return [(selection.cells.start, selection.cells.stop)]
    return [(g, g + 1) for g in selection.genes]


def covered(x, selections: Mapping[str, Selection]) -> dict[str, tuple[str, int]]:
    """pattern -> (ranges, values): what each read of X (its zarr array, or the group of a
    sparse matrix) asks the store for.

    ``ranges``: where the read is along the grain (:func:`along_the_grain`), a compact JSON text
    ``{"pointers": [[start, stop], ...], "values": [[start, stop], ...]}``, half-open ranges
    of the entries of ``indptr`` and of the positions of ``data`` and ``indices`` it reads:
    for a block of cells ``[first, stop + 1]`` and ``[indptr[first], indptr[stop]]``, for
    each gene ``[g, g + 2]`` and ``[indptr[g], indptr[g + 1]]``.  Otherwise ``""``: the read
    fetches whole arrays (across the grain, all of X, dense X) or none of X (open).

    ``values``: the stored values the read covers: the sum of its value ranges, all of them
    (nnz) where it reads whole arrays, none for open; of dense X, its cells times its genes.

    The ``indptr`` entries these need are read here, once for all patterns, in one read of the
    chunks that hold them (call it where the reads are not counted).
    """
    if not is_sparse(x):
        return {p: ("", len(s.cells) * len(s.genes)) for p, s in selections.items()}
    encoding = x.attrs["encoding-type"]
    indptr = x["indptr"]
    last = indptr.shape[0] - 1
    wanted = {
        p: _major_ranges(s, encoding) for p, s in selections.items() if along_the_grain(p, encoding)
    }
    points = sorted({last} | {end for runs in wanted.values() for run in runs for end in run})
    entries = np.asarray(indptr.get_coordinate_selection(np.array(points, dtype=np.int64)))
    at = dict(zip(points, (int(e) for e in entries), strict=True))
    found = {}
    for pattern in selections:
        if pattern not in wanted:
            found[pattern] = ("", 0 if pattern == "open" else at[last])
            continue
        pointers = [[low, high + 1] for low, high in wanted[pattern]]
        values = [[at[low], at[high]] for low, high in wanted[pattern]]
        text = json.dumps({"pointers": pointers, "values": values}, separators=(",", ":"))
        found[pattern] = (text, sum(high - low for low, high in values))
    return found


def parse_ranges(text) -> tuple[list[tuple[int, int]], list[tuple[int, int]]] | None:
    """(pointer ranges, value ranges) of a recorded ``ranges`` text (:func:`covered`); None for
    a read of whole arrays, recorded as ``""`` (or an empty cell read back from a TSV)."""
    if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
        return None
    parsed = json.loads(text)
    return (
        [(int(a), int(b)) for a, b in parsed["pointers"]],
        [(int(a), int(b)) for a, b in parsed["values"]],
    )


#: A read of all of X, or across the grain, streams X's arrays in windows of whole stored
#: objects, at most zarr's 10 in flight and about WINDOW_BYTES decoded, so that the measuring
#: process holds a window, not X: every object is fetched once, as a whole read fetches it.
WINDOW_OBJECTS = 10
WINDOW_BYTES = 1 << 28


def windows(array, axis: int = 0):
    """Selections of ``array`` along ``axis``, each of whole stored objects (shards, or
    chunks): up to WINDOW_OBJECTS of them and WINDOW_BYTES decoded, at least one."""
    grid = stored_grid(array)[axis]
    per_object = array.nbytes / array.shape[axis] * grid if array.shape[axis] else 1
    count = max(1, min(WINDOW_OBJECTS, int(WINDOW_BYTES // max(per_object, 1))))
    step = grid * count
    for start in range(0, array.shape[axis], step):
        part = slice(start, min(start + step, array.shape[axis]))
        yield (slice(None),) * axis + (part,)


def read_pattern(pattern: str, x, selection: Selection | None = None) -> tuple[int, int]:
    """Read one access pattern of X (its zarr array, or the group of a sparse matrix) as a
    reader of the store would, planned per array: every stored object it needs is fetched
    once, whatever the orientation.  Reads ``selection``, by default the pattern's own for
    X's shape (:func:`~._reads.pattern_selection`); returns the cells and genes it read.

    Along the grain, sparse X is read through anndata's own backed matrix
    (``sparse_dataset``): a block of cells of a cell-major store, or a few genes of a
    gene-major one, reads only their ranges of ``data`` and ``indices``.  Across the grain
    (genes of a CSR store, cells of a CSC one) a reader fetches every object of X; here
    ``indptr`` whole, then ``data`` and ``indices`` in windows (:func:`windows`), keeping the
    values selected.  All of X is each array read in windows.
    """
    from anndata.io import sparse_dataset

    if pattern == "open":
        raise ChunkatlasError(
            "the open pattern reads the store's metadata, obs and var: no part of X"
        )
    sparse = is_sparse(x)
    n_obs, n_vars = matrix_shape(x)
    if pattern == "all_x":
        for array in (x["indptr"], x["indices"], x["data"]) if sparse else (x,):
            axis = 0 if sparse or array.chunks[0] < n_obs else 1
            for window in windows(array, axis):
                array[window]
        return n_obs, n_vars
    selection = selection or pattern_selection(pattern, n_obs, n_vars)
    if sparse and not along_the_grain(pattern, x.attrs["encoding-type"]):
        select_streamed(x, selection)
    else:
        matrix = sparse_dataset(x) if sparse else x
        matrix[selection.index(n_obs, n_vars)]
    return len(selection.cells), len(selection.genes)


def select_streamed(x, selection: Selection) -> int:
    """The stored values of ``selection`` in sparse X read across the grain (genes of CSR, cells
    of CSC): its pointers, then each window of ``indices`` and ``data``, the values of the
    wanted minor axis kept; returns how many."""
    csr = x.attrs["encoding-type"] == "csr_matrix"
    wanted = np.asarray(selection.genes if csr else selection.cells, dtype=np.int64)
    x["indptr"][:]
    kept = 0
    for window in windows(x["indices"]):
        minor = x["indices"][window]
        chosen = np.isin(minor, wanted)
        kept += int(np.count_nonzero(x["data"][window][chosen]))
    return kept
