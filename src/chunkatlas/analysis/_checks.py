"""Checks that X holds counts, made before any result is computed from it."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

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


def check_counts(x, *, integers: bool, where: str) -> None:
    """Refuse negative or non-finite values; with ``integers``, also non-integer ones.

    ``where`` names the data in the message (a store path, "X", ...).
    """
    refuse_problems(count_problems(x), integers=integers, where=where)


def refuse_problems(problems, *, integers: bool, where: str) -> None:
    """Raise for the counts of :func:`block_problems` (summed over blocks) that are not zero."""
    negative, not_finite, fractional = (int(n) for n in problems)
    if not_finite:
        raise ChunkatlasError(
            f"{where}: X has {not_finite} NaN or infinite values; counts must "
            "be finite and non-negative"
        )
    if negative:
        raise ChunkatlasError(
            f"{where}: X has {negative} negative values; counts must be non-negative"
        )
    if integers and fractional:
        raise ChunkatlasError(
            f"{where}: X has {fractional} non-integer values; this HVG flavor "
            "needs raw integer counts"
        )
