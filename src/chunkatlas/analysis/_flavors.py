"""The analysis engines and the HVG flavors both compute, with or without batches (scanpy 1.12
has them all on Dask), and what each flavor needs of X: its one-line refusals.

The config schema lists the same names as its enums (``analysis.engine``,
``analysis.flavor``); ``tests/test_settings.py`` fails the day they differ."""

from __future__ import annotations

ENGINES = ("fused", "scanpy")
FLAVORS = ("seurat", "cell_ranger", "seurat_v3", "seurat_v3_paper")


def selects_on_counts(flavor: str) -> bool:
    """Whether HVG ``flavor`` selects on the raw counts (before normalize_total and log1p)."""
    return flavor in ("seurat_v3", "seurat_v3_paper")


def engine_flavor_problem(engine: str, flavor: str) -> str | None:
    """Why ``engine`` cannot run HVG ``flavor`` (one line), or None when it can."""
    if engine not in ENGINES:
        return f"analysis engine {engine!r} is not one of {', '.join(ENGINES)}"
    if flavor not in FLAVORS:
        return f"HVG flavor {flavor!r} is not one of {', '.join(FLAVORS)} for engine {engine!r}"
    return None


#: The ways to give the analysis raw counts, or to say that X holds none (one-line messages).
COUNTS_WAYS_OUT = (
    "take the counts from a layer (source.layer, e.g. counts) or from raw (source.use_raw: true)"
)
NORMALIZED_WAY_OUT = (
    "or, if X is already normalised and log1p'd, set analysis.normalized: true (CLI "
    "--normalized) to skip normalize_total and log1p"
)


def normalized_flavor_problem(flavor: str, normalized: bool) -> str | None:
    """Why HVG ``flavor`` cannot run on already normalised data (one line), or None."""
    if normalized and selects_on_counts(flavor):
        return (
            f"flavor {flavor} selects genes on raw counts, so it cannot run on normalised data "
            f"(analysis.normalized: true): use flavor seurat or cell_ranger, or "
            f"{COUNTS_WAYS_OUT} with analysis.normalized: false"
        )
    return None
