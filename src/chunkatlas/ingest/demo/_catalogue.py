"""What the demo atlas is made of: assays, tissues with their sub-tissues and cell types, cell
type lineages, gene name prefixes."""

from __future__ import annotations

from dataclasses import dataclass

from chunkatlas.ingest.demo._spec import DemoSpec

# Assays with their relative sequencing depth and their probability per dataset.
_ASSAYS: dict[str, tuple[float, float]] = {
    "10x 3' v3": (1.0, 0.6),
    "10x 3' v2": (0.55, 0.25),
    "10x 5' v2": (0.8, 0.15),
}


@dataclass(frozen=True)
class _CellType:
    """Catalogue entry: a cell type, its lineage and relative library size."""

    name: str
    lineage: str
    size_factor: float


@dataclass(frozen=True)
class _Tissue:
    """Catalogue entry: sub-tissues and cell-type composition of a tissue."""

    sub_tissues: tuple[tuple[str, float], ...]
    cell_types: tuple[tuple[str, float], ...]


_CELL_TYPES: dict[str, _CellType] = {
    c.name: c
    for c in (
        _CellType("macrophage", "immune", 1.3),
        _CellType("T cell", "immune", 0.7),
        _CellType("B cell", "immune", 0.8),
        _CellType("natural killer cell", "immune", 0.75),
        _CellType("classical monocyte", "immune", 1.0),
        _CellType("plasmacytoid dendritic cell", "immune", 0.9),
        _CellType("microglial cell", "immune", 0.9),
        _CellType("type II pneumocyte", "epithelial", 1.1),
        _CellType("ciliated cell", "epithelial", 1.2),
        _CellType("endothelial cell", "stromal", 0.9),
        _CellType("fibroblast", "stromal", 1.1),
        _CellType("oligodendrocyte", "glial", 0.9),
        _CellType("astrocyte", "glial", 1.0),
        _CellType("glutamatergic neuron", "neuronal", 1.6),
        _CellType("GABAergic neuron", "neuronal", 1.5),
    )
}

_TISSUES: dict[str, _Tissue] = {
    "lung": _Tissue(
        sub_tissues=(("lung", 0.6), ("lung parenchyma", 0.3), ("bronchus", 0.1)),
        cell_types=(
            ("macrophage", 0.32),
            ("type II pneumocyte", 0.22),
            ("T cell", 0.16),
            ("endothelial cell", 0.12),
            ("fibroblast", 0.10),
            ("ciliated cell", 0.05),
            ("B cell", 0.03),
        ),
    ),
    "blood": _Tissue(
        sub_tissues=(("blood", 0.7), ("peripheral blood", 0.2), ("umbilical cord blood", 0.1)),
        cell_types=(
            ("T cell", 0.48),
            ("classical monocyte", 0.22),
            ("B cell", 0.13),
            ("natural killer cell", 0.11),
            ("plasmacytoid dendritic cell", 0.03),
        ),
    ),
    "brain": _Tissue(
        sub_tissues=(
            ("cerebral cortex", 0.6),
            ("hippocampal formation", 0.25),
            ("cerebellum", 0.15),
        ),
        cell_types=(
            ("oligodendrocyte", 0.36),
            ("glutamatergic neuron", 0.26),
            ("astrocyte", 0.14),
            ("GABAergic neuron", 0.12),
            ("microglial cell", 0.08),
            ("endothelial cell", 0.04),
        ),
    ),
}

_GENE_PREFIXES = (
    "ACT", "ADAM", "ANK", "ARHGAP", "ATP", "CCDC", "CD", "CDH", "COL", "CXCL", "DNAJ",
    "FAM", "GPR", "IL", "KCN", "KIF", "KRT", "LRRC", "MYO", "NDUF", "PCDH", "PPP1R",
    "RAB", "RPL", "RPS", "SLC", "TMEM", "TRIM", "USP", "WDR", "ZNF",
)  # fmt: skip


def _tissue_catalogue(name: str) -> _Tissue:
    """Return the curated composition of ``name`` or a generic one."""
    if name in _TISSUES:
        return _TISSUES[name]
    return _Tissue(
        sub_tissues=((name, 0.8), (f"{name} tissue", 0.2)),
        cell_types=(
            (f"{name} epithelial cell", 0.35),
            ("fibroblast", 0.2),
            ("endothelial cell", 0.15),
            ("macrophage", 0.12),
            (f"{name} stromal cell", 0.1),
            ("T cell", 0.08),
        ),
    )


def _cell_type_info(name: str) -> _CellType:
    """Return the catalogue entry of a cell type (generic ones are epithelial/stromal)."""
    if name in _CELL_TYPES:
        return _CELL_TYPES[name]
    lineage = "epithelial" if name.endswith("epithelial cell") else "stromal"
    return _CellType(name, lineage, 1.0)


def _cell_types(spec: DemoSpec) -> tuple[str, ...]:
    """Return all cell types of the atlas, in order of first appearance over tissues."""
    seen: dict[str, None] = {}
    for tissue in spec.tissues:
        for name, _ in _tissue_catalogue(tissue).cell_types:
            seen.setdefault(name, None)
    return tuple(seen)
