"""The size, seed and layout of a demo atlas, checked field by field."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chunkatlas._schema import default_field
from chunkatlas.errors import ChunkatlasError


class DemoSpecError(ChunkatlasError, ValueError):
    """An out-of-range :class:`DemoSpec` field or unsupported ``uri``.

    A ``ValueError`` as well as a :class:`~chunkatlas.errors.ChunkatlasError`,
    so the CLI and Snakemake scripts print its one-line message.
    """


@dataclass(frozen=True)
class DemoSpec:
    """Size, seed and layout of a demo atlas.

    Parameters
    ----------
    n_cells : int
        Number of cells (rows of ``X``); must be positive.
    n_genes : int
        Number of genes (columns of ``X``); at least 200 so marker genes fit.
    seed : int
        Seed of every random stream; the same spec always gives the same atlas.
    tissues : tuple of str
        ``tissue_general`` values, at least three distinct names. ``"lung"``,
        ``"blood"`` and ``"brain"`` have curated sub-tissues and cell types; other
        names get a generic composition. Abundance decreases along the tuple.
    primary_fraction : float
        Share of cells with ``is_primary_data`` True, in ``(0, 1]``.
    block_cells : int
        Cells generated and written per block by :func:`write_demo_atlas`.

    Raises
    ------
    DemoSpecError
        If any field is out of range (a ``ValueError``).
    """

    n_cells: int = default_field("demo_atlas.n_cells")
    n_genes: int = default_field("demo_atlas.n_genes")
    seed: int = default_field("demo_atlas.seed")
    tissues: tuple[str, ...] = ("lung", "blood", "brain")
    primary_fraction: float = 0.9
    block_cells: int = 5_000

    def __post_init__(self) -> None:
        if isinstance(self.tissues, list):  # e.g. from a YAML config
            object.__setattr__(self, "tissues", tuple(self.tissues))
        _validate(self)


def _is_int(value: object) -> bool:
    """Tell whether ``value`` is an integer (and not a bool)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _validate(spec: DemoSpec) -> None:
    """Raise :class:`DemoSpecError` naming the first out-of-range field of ``spec``."""
    if not _is_int(spec.n_cells) or spec.n_cells <= 0:
        raise DemoSpecError(f"n_cells={spec.n_cells!r} is invalid; it must be a positive integer")
    if not _is_int(spec.n_genes) or spec.n_genes < 200:
        raise DemoSpecError(
            f"n_genes={spec.n_genes!r} is invalid; it must be an integer of at least 200"
        )
    if not _is_int(spec.seed) or spec.seed < 0:
        raise DemoSpecError(f"seed={spec.seed!r} is invalid; it must be a non-negative integer")
    fraction = spec.primary_fraction
    if not isinstance(fraction, float | int) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise DemoSpecError(f"primary_fraction={fraction!r} is invalid; it must be in (0, 1]")
    if not _is_int(spec.block_cells) or spec.block_cells <= 0:
        raise DemoSpecError(
            f"block_cells={spec.block_cells!r} is invalid; it must be a positive integer"
        )
    names = spec.tissues
    if (
        not isinstance(names, tuple)
        or not all(isinstance(t, str) and t for t in names)
        or len(names) < 3
        or len(set(names)) != len(names)
    ):
        raise DemoSpecError(
            f"tissues={names!r} is invalid; it must be at least 3 distinct non-empty names"
        )
