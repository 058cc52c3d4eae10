"""What an atlas's own values take once stored: bytes per stored value and per pointer in each
codec preset, measured on a sample of its cells (``chunkatlas advise`` on a store or h5ad).

A cost model's bytes per value were measured on its study's stores; another atlas's values
(counts or normalised, deeper or shallower cells, more or fewer genes) store in more or fewer
bytes.  So a contiguous block of the source's cells (a few million stored values at most, whole
cells, from a seeded random first cell) is written as an AnnData store of its own, then
re-written by :func:`chunkatlas.rewrite.rechunk_store` in each orientation and codec preset:
cell-major stores the block's CSR as it is, gene-major its CSC, whose cell numbers within a gene
are as far apart as in the whole atlas (a block of cells keeps each gene's density).  The
stored bytes of X's arrays, from the store's manifest, are exactly what the writer stores: the
presets' casts, delta coding and compressors are the writer's own.

The sample is one chunk per array: the bytes of large chunks, which span many of Blosc's
blocks.  Smaller chunks can store more per value: Blosc bit-shuffles no block whose length is
not a multiple of 8 values, so ``packed`` indices in a chunk that is a single Blosc block (256
kB: 128 Ki two-byte values) store up to a quarter more unless the chunk's length is a multiple
of 8.

What a sample cannot show: the integer type of ``packed`` values is chosen from the sample's
values (the whole atlas's largest value may need a wider one), gene-major cell numbers are the
sample's (a smaller type than the whole atlas's may hold them), and each gene's run of values
is shorter, so its pointers differ by less.  Each moves the bytes by a few percent at most:
bit-shuffle keeps unused high bits nearly free.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from chunkatlas.errors import ChunkatlasError
from chunkatlas.model._sources import is_anndata_source, stored_x
from chunkatlas.model._text import count_text
from chunkatlas.model._traffic import Encoding

#: Stored values a sample holds at most (whole cells; at least one cell).
SAMPLE_VALUES = 2_000_000
#: Values of a gene-major (CSC) X read at a time while its sample of cells is gathered.
SCAN_VALUES = 1 << 22
MAJOR = {"cells": "cell-major", "genes": "gene-major"}


@dataclass(frozen=True)
class StoredBytes:
    """Stored bytes of X in one orientation and codec, per stored value (``data`` and
    ``indices``; every value of a dense X) and per pointer (``indptr``; none in a dense X)."""

    bytes_per_value: float
    bytes_per_pointer: float


@dataclass(frozen=True)
class EncodingSample:
    """Bytes per value and per pointer of a source's own values, per (orientation, codec),
    measured on ``cells`` cells from cell number ``first`` holding ``values`` stored values."""

    source: str
    first: int
    cells: int
    values: int
    dense: bool
    stored: Mapping[tuple[str, str], StoredBytes]

    def encodings(
        self, model: Mapping[tuple[str, str], Encoding]
    ) -> dict[tuple[str, str], Encoding]:
        """``model``'s encodings (a cost model's: their decode seconds per byte) with the bytes
        measured here, where this sample measured their orientation and codec."""
        found = {}
        for key, encoding in model.items():
            own = self.stored.get(key)
            found[key] = encoding if own is None else replace(encoding, **asdict(own))
        return found

    def describe(self, keys: Iterable[tuple[str, str]] | None = None) -> str:
        """One line: where the bytes come from, and each codec's bytes per value (those of
        ``keys``, (orientation, codec), if given)."""
        dense = ", X dense" if self.dense else ""
        wanted = self.stored.keys() if keys is None else set(keys)
        shown = {key: found for key, found in self.stored.items() if key in wanted}
        return (
            f"bytes per value from a sample of {count_text(self.values)} values "
            f"({count_text(self.cells)} cells from cell {count_text(self.first)}{dense}) of "
            f"{self.source}, stored as rechunk stores them: {bytes_text(shown)}"
        )


def bytes_text(encodings: Mapping[tuple[str, str], StoredBytes | Encoding]) -> str:
    """Each codec's bytes per value in each orientation: ``packed 1.21 B cell-major, 1.10 B
    gene-major; zstd ...``."""
    by_codec: dict[str, list[str]] = {}
    for (orientation, codec), found in sorted(encodings.items(), key=lambda kv: kv[0][::-1]):
        text = f"{found.bytes_per_value:.2f} B {MAJOR.get(orientation, orientation)}"
        by_codec.setdefault(codec, []).append(text)
    return "; ".join(f"{codec} {', '.join(texts)}" for codec, texts in by_codec.items())


def measure_encodings(
    source: str, codecs: Sequence[str], *, sample_values: int = SAMPLE_VALUES, seed: int = 0
) -> EncodingSample:
    """Bytes per stored value and per pointer of X of ``source`` (an AnnData zarr store, local
    or remote, or a local h5ad) in both orientations and each of ``codecs`` (presets of
    :data:`chunkatlas.rewrite.CODECS`), measured on a contiguous block of its cells holding at
    most ``sample_values`` stored values, whose first cell ``seed`` chooses.

    A dense X is stored dense in either orientation: every value is a stored value and there
    are no pointers.  A gene-major (CSC) X keeps no cell's values together: it is read whole
    to gather the block.

    Raises
    ------
    ChunkatlasError
        One line naming the bad value and what is allowed: a codec that is no preset,
        ``sample_values`` below one, a source that is no AnnData store or h5ad, or whose X
        stores no values.
    """
    from chunkatlas.rewrite import CODECS

    if isinstance(sample_values, bool) or not isinstance(sample_values, int) or sample_values < 1:
        raise ChunkatlasError(
            f"sample_values {sample_values!r}: the stored values to sample, a positive integer"
        )
    codecs = list(dict.fromkeys(codecs))
    unknown = [c for c in codecs if c not in CODECS]
    if unknown or not codecs:
        raise ChunkatlasError(
            f"codec {unknown[0] if unknown else 'none'!r}: measure_encodings measures one or "
            f"more of {', '.join(CODECS)}"
        )
    where = str(source).rstrip("/")
    with stored_x(where) as x:
        matrix, first = _sample(x, where, sample_values, seed)
    dense = isinstance(matrix, np.ndarray)
    values = matrix.size if dense else matrix.nnz
    stored = _stored_bytes(matrix, codecs)
    return EncodingSample(where, first, matrix.shape[0], int(values), dense, stored)


def own_encodings(
    source: str,
    model: Mapping[tuple[str, str], Encoding],
    *,
    sample_values: int = SAMPLE_VALUES,
    seed: int = 0,
) -> dict[tuple[str, str], Encoding]:
    """``model``'s encodings (orientation, codec) -> :class:`Encoding` with the bytes per value
    and per pointer of ``source``'s own values (:func:`measure_encodings`); decode seconds per
    byte stay the model's.  Codecs that are no preset keep the model's bytes."""
    sample = _measure_for(source, model, sample_values, seed)
    return sample.encodings(model) if sample else dict(model)


def source_encodings(
    source: str | None,
    model: Mapping[tuple[str, str], Encoding],
    *,
    sample_values: int = SAMPLE_VALUES,
    seed: int = 0,
) -> tuple[dict[tuple[str, str], Encoding] | None, str]:
    """The encodings ``chunkatlas advise`` predicts with, and the line that says where their
    bytes come from: an AnnData ``source``'s own (:func:`own_encodings`), else (no source, a
    SOMA Experiment) None, the cost model's."""
    sample = None
    if source is not None and is_anndata_source(source):
        sample = _measure_for(source, model, sample_values, seed)
    if sample is None:
        kind = "" if source is None else f" ({source} is not sampled: a SOMA Experiment)"
        return None, f"bytes per value from the cost model{kind}: {bytes_text(model)}"
    return sample.encodings(model), sample.describe(model)


def _measure_for(
    source: str, model: Mapping[tuple[str, str], Encoding], sample_values: int, seed: int
) -> EncodingSample | None:
    """:func:`measure_encodings` of the codecs of ``model`` that are presets (None if none)."""
    from chunkatlas.rewrite import CODECS

    codecs = sorted({codec for _, codec in model if codec in CODECS})
    if not codecs:
        return None
    return measure_encodings(source, codecs, sample_values=sample_values, seed=seed)


def _sample(x, where: str, sample_values: int, seed: int):
    """(a block of whole cells of X as scipy CSR or a dense numpy array, its first cell)."""
    from chunkatlas.store import is_sparse, matrix_shape

    n_obs, n_vars = (int(n) for n in matrix_shape(x))
    if n_obs == 0 or n_vars == 0:
        raise ChunkatlasError(f"X of {where} is empty ({n_obs} cells x {n_vars} genes)")
    if not is_sparse(x):
        cells = min(n_obs, max(1, sample_values // n_vars))
        first = _first_cell(n_obs, cells, seed)
        return np.asarray(x[first : first + cells]), first
    nnz = int(x["data"].shape[0])
    if nnz == 0:
        raise ChunkatlasError(f"X of {where} stores no values: no bytes per value to measure")
    cells = min(n_obs, max(1, sample_values * n_obs // nnz))
    first = _first_cell(n_obs, cells, seed)
    if x.attrs.get("encoding-type") == "csc_matrix":
        block = _cells_of_csc(x, first, cells, n_vars)
        return block[: _whole_cells(block.indptr, sample_values)], first
    indptr = np.asarray(x["indptr"][first : first + cells + 1], dtype=np.int64)
    cells = _whole_cells(indptr, sample_values)
    low, high = int(indptr[0]), int(indptr[cells])
    pointers = indptr[: cells + 1] - low
    return _csr(x["data"][low:high], x["indices"][low:high], pointers, (cells, n_vars)), first


def _whole_cells(indptr: np.ndarray, sample_values: int) -> int:
    """The first cells of a block (its CSR pointers) that hold at most ``sample_values``
    values; at least one cell, however many it holds."""
    return max(1, int(np.searchsorted(indptr, indptr[0] + sample_values, side="right")) - 1)


def _first_cell(n_obs: int, cells: int, seed: int) -> int:
    return int(np.random.default_rng(seed).integers(0, n_obs - cells + 1))


def _csr(data, indices, indptr, shape):
    import scipy.sparse as sp

    return sp.csr_matrix((np.asarray(data), np.asarray(indices), np.asarray(indptr)), shape=shape)


def _cells_of_csc(x, first: int, cells: int, n_vars: int):
    """Cells ``first`` to ``first + cells`` of a CSC X, as CSR: its cell numbers read
    :data:`SCAN_VALUES` at a time, and the values of the block's cells."""
    import scipy.sparse as sp

    indptr = np.asarray(x["indptr"][:], dtype=np.int64)
    genes, numbers, values = [], [], []
    for low in range(0, int(indptr[-1]), SCAN_VALUES):
        high = min(low + SCAN_VALUES, int(indptr[-1]))
        cell = np.asarray(x["indices"][low:high])
        kept = np.flatnonzero((cell >= first) & (cell < first + cells))
        if kept.size:
            genes.append(np.searchsorted(indptr, kept + low, side="right") - 1)
            numbers.append(cell[kept] - first)
            values.append(np.asarray(x["data"][low:high])[kept])
    if not values:
        return sp.csr_matrix((cells, n_vars), dtype=x["data"].dtype)
    triplets = (np.concatenate(values), (np.concatenate(numbers), np.concatenate(genes)))
    return sp.csr_matrix(sp.coo_matrix(triplets, shape=(cells, n_vars)))


def _stored_bytes(matrix, codecs: Sequence[str]) -> dict[tuple[str, str], StoredBytes]:
    """Per (orientation, codec): ``matrix`` written as an AnnData store, re-written by
    :func:`chunkatlas.rewrite.rechunk_store` (unsharded, one chunk per array), and the stored
    bytes of its X per stored value and per pointer, from its manifest."""
    import anndata as ad
    import pandas as pd

    from chunkatlas.rewrite import rechunk_store
    from chunkatlas.store import build_manifest

    n_cells, n_vars = matrix.shape
    dense = isinstance(matrix, np.ndarray)
    values = matrix.size if dense else matrix.nnz
    names = [pd.Index([str(i) for i in range(n)]) for n in matrix.shape]
    found = {}
    with tempfile.TemporaryDirectory(prefix="chunkatlas-encoding-") as folder:
        source = Path(folder) / "sample.zarr"
        ad.AnnData(
            X=matrix, obs=pd.DataFrame(index=names[0]), var=pd.DataFrame(index=names[1])
        ).write_zarr(source)
        for orientation, units in (("cells", n_cells), ("genes", n_vars)):
            for codec in codecs:
                dest = Path(folder) / f"{orientation}-{codec}.zarr"
                rechunk_store(source, dest, units, codec=codec, orientation=orientation)
                arrays = {
                    a["path"]: a["stored_bytes"]
                    for a in build_manifest(dest, checksums=False)["arrays"]
                }
                shutil.rmtree(dest)
                if dense:
                    found[(orientation, codec)] = StoredBytes(arrays["X"] / values, 0.0)
                    continue
                pointers = units + 1
                found[(orientation, codec)] = StoredBytes(
                    (arrays["X/data"] + arrays["X/indices"]) / max(values, 1),
                    arrays["X/indptr"] / pointers,
                )
    return found
