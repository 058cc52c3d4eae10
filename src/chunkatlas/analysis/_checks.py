"""Checks that X holds counts, made before any result is computed from it: over all of X as
the analysis reads it (:func:`check_counts`; the fused engine counts in its first pass), and on
a sample of a source's stored values before any job (:func:`check_counts_sample`)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from chunkatlas.analysis._flavors import COUNTS_WAYS_OUT, NORMALIZED_WAY_OUT
from chunkatlas.errors import ChunkatlasError


def block_problems(block) -> np.ndarray:
    """[negative, NaN or infinite, non-integer] value counts of one block (sparse or dense)."""
    values = block.data if sp.issparse(block) else np.asarray(block).ravel()
    finite = np.isfinite(values)
    return np.array(
        [
            int(np.count_nonzero(values[finite] < 0)),
            int(np.count_nonzero(~finite)),
            int(np.count_nonzero(values[finite] != np.round(values[finite]))),
        ],
        dtype=np.int64,
    )


def count_problems(x) -> np.ndarray:
    """Sum :func:`block_problems` over a matrix, block by block if it is a Dask array."""
    if hasattr(x, "to_delayed"):
        import dask

        parts = [dask.delayed(block_problems)(b) for b in x.to_delayed().ravel()]
        return np.sum(dask.compute(*parts), axis=0)
    return block_problems(x)


def check_counts(x, *, integers: bool, where: str, on_counts: bool = False) -> None:
    """Refuse negative or non-finite values; with ``integers``, also non-integer ones.

    ``where`` names the data in the message (a store path, "X", ...); ``on_counts``: the HVG
    flavor selects on the counts (the message offers no ``analysis.normalized``).
    """
    refuse_problems(count_problems(x), integers=integers, where=where, on_counts=on_counts)


def check_counts_sample(
    values: np.ndarray,
    *,
    normalized: bool,
    on_counts: bool,
    where: str,
    matrix: str = "X",
) -> None:
    """:func:`check_counts` of a sample of a matrix's stored ``values`` (its first stored
    chunk, read from a source's metadata before any job)."""
    of = f" among its first {len(values):,} stored values"
    refuse_problems(
        block_problems(values),
        integers=not normalized,
        where=where,
        on_counts=on_counts,
        matrix=matrix,
        of=of,
    )


def refuse_problems(
    problems,
    *,
    integers: bool,
    where: str,
    on_counts: bool = False,
    matrix: str = "X",
    of: str = "",
) -> None:
    """Raise for the counts of :func:`block_problems` (summed over blocks) that are not zero:
    one line naming the values and the ways out (``matrix``: which matrix of ``where`` they
    are in; ``of``: how many values were looked at)."""
    negative, not_finite, fractional = (int(n) for n in problems)
    if not_finite:
        raise ChunkatlasError(
            f"{where}: {matrix} has {not_finite} NaN or infinite values{of}; counts must "
            "be finite and non-negative"
        )
    if negative:
        raise ChunkatlasError(
            f"{where}: {matrix} has {negative} negative values{of}; counts must be non-negative "
            "(scaled data cannot be analysed: give the counts, or normalised and log1p'd values)"
        )
    if integers and fractional:
        if on_counts:
            need = "the HVG flavor selects genes on them"
            ways = COUNTS_WAYS_OUT
        else:
            need = "normalize_total and log1p expect them"
            ways = f"{COUNTS_WAYS_OUT}, {NORMALIZED_WAY_OUT}"
        raise ChunkatlasError(
            f"{where}: {matrix} has {fractional} non-integer values{of}, so it does not hold "
            f"raw counts ({need}): {ways}"
        )
