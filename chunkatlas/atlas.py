"""Embedded, Census-shaped demo atlas generator.

Writes a small TileDB-SOMA Experiment laid out like the CELLxGENE Census
(``obs``; ``ms['RNA'].var``; ``ms['RNA'].X['raw']`` holding integer counts stored
as float32) from a fixed seed, so the workflow can be exercised without network
access.

The simulation is split into pure functions (:func:`simulate_obs`,
:func:`simulate_var`, :func:`simulate_counts`) and one writer
(:func:`write_demo_atlas`).

Count model
-----------
Every cell type ``t`` has a relative expression profile ``p_t`` over genes (rows
sum to one). The profile starts from a heavy-tailed gene baseline (log
expression Gumbel-distributed: a Zipf-like top of a few very highly expressed
genes, many low ones, but no gene so low it is never seen), is perturbed mildly
per cell type, and then gets lineage-module genes (shared by related cell
types, e.g. all immune cells) and cell-type marker genes set far above the mean
gene. A cell ``c`` of type ``t`` gets a log-normal library size
``L_c`` and counts ``X[c, g] ~ Poisson(L_c * p_t[g] * G)`` with
``G ~ Gamma(theta_g, 1 / theta_g)``, i.e. negative-binomial counts with
gene-specific overdispersion ``1 / theta_g``. A cell left without any count
gets one count of its most expected gene, so no cell is empty (as after QC).

Randomness is drawn from independent streams derived from ``AtlasSpec.seed``
with :class:`numpy.random.SeedSequence`. Counts are drawn per fixed chunk of
:data:`RNG_CHUNK_CELLS` cells, so a cell's counts depend only on the seed, its
position and the spec, never on ``block_cells`` or on how ``[start, stop)``
ranges are chosen.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from chunkatlas.errors import ChunkatlasError
from chunkatlas.storeio import atomic_directory

__all__ = [
    "RNG_CHUNK_CELLS",
    "AtlasSpec",
    "AtlasSpecError",
    "simulate_counts",
    "simulate_obs",
    "simulate_var",
    "write_demo_atlas",
]

#: Cells per independent random stream in :func:`simulate_counts`.
RNG_CHUNK_CELLS = 256

# Independent random streams derived from the seed (``SeedSequence.spawn_key``).
_STREAM_OBS = 1
_STREAM_VAR = 2
_STREAM_GENES = 3
_STREAM_COUNTS = 4

# Count-model parameters (tuned for ~5 % non-zero and realistic spread).
_DEPTH_PER_GENE = 0.17  # median library size per gene in the panel
_LIBRARY_SIGMA = 0.7  # sd of log library size within a cell type and assay
_BASE_SCALE = 0.8  # Gumbel scale of log baseline expression: Zipf-like top, short bottom
_HOUSEKEEPING_FRACTION = 0.02  # share of genes given a large expression boost
_HOUSEKEEPING_BOOST = 50.0
_TYPE_NOISE_SIGMA = 0.3  # sd of log per-cell-type perturbation of all genes
_MARKER_FRACTION = 0.015  # marker genes per cell type, as a share of all genes ...
_MARKERS_MIN, _MARKERS_MAX = 10, 40  # ... within these bounds
_MARKER_LEVEL = 80.0  # marker expression relative to the mean gene (geometric mean)
_MODULE_LEVEL = 15.0  # lineage-module expression relative to the mean gene
_MODULE_RATIO = 0.5  # lineage-module genes per marker gene
_LEVEL_SIGMA = 0.6  # sd of log marker / module levels
_THETA_MEDIAN = 2.5  # median gamma shape; dispersion is 1 / theta
_THETA_SIGMA = 0.5

_OBS_COLUMNS = (
    "dataset_id",
    "assay",
    "cell_type",
    "donor_id",
    "is_primary_data",
    "sex",
    "tissue",
    "tissue_general",
)
_VAR_COLUMNS = ("feature_id", "feature_name", "feature_length")

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


class AtlasSpecError(ChunkatlasError, ValueError):
    """An out-of-range :class:`AtlasSpec` field or unsupported ``uri``.

    A ``ValueError`` as well as a :class:`~chunkatlas.errors.ChunkatlasError`,
    so the CLI and Snakemake scripts print its one-line message.
    """


@dataclass(frozen=True)
class AtlasSpec:
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
    AtlasSpecError
        If any field is out of range (a ``ValueError``).
    """

    n_cells: int = 30_000
    n_genes: int = 2_000
    seed: int = 0
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


def _validate(spec: AtlasSpec) -> None:
    """Raise :class:`AtlasSpecError` naming the first out-of-range field of ``spec``."""
    if not _is_int(spec.n_cells) or spec.n_cells <= 0:
        raise AtlasSpecError(f"n_cells={spec.n_cells!r} is invalid; it must be a positive integer")
    if not _is_int(spec.n_genes) or spec.n_genes < 200:
        raise AtlasSpecError(
            f"n_genes={spec.n_genes!r} is invalid; it must be an integer of at least 200"
        )
    if not _is_int(spec.seed) or spec.seed < 0:
        raise AtlasSpecError(f"seed={spec.seed!r} is invalid; it must be a non-negative integer")
    fraction = spec.primary_fraction
    if not isinstance(fraction, float | int) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise AtlasSpecError(f"primary_fraction={fraction!r} is invalid; it must be in (0, 1]")
    if not _is_int(spec.block_cells) or spec.block_cells <= 0:
        raise AtlasSpecError(
            f"block_cells={spec.block_cells!r} is invalid; it must be a positive integer"
        )
    names = spec.tissues
    if (
        not isinstance(names, tuple)
        or not all(isinstance(t, str) and t for t in names)
        or len(names) < 3
        or len(set(names)) != len(names)
    ):
        raise AtlasSpecError(
            f"tissues={names!r} is invalid; it must be at least 3 distinct non-empty names"
        )


# --------------------------------------------------------------------------- catalogue


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


def _cell_types(spec: AtlasSpec) -> tuple[str, ...]:
    """Return all cell types of the atlas, in order of first appearance over tissues."""
    seen: dict[str, None] = {}
    for tissue in spec.tissues:
        for name, _ in _tissue_catalogue(tissue).cell_types:
            seen.setdefault(name, None)
    return tuple(seen)


def _rng(spec: AtlasSpec, *key: int) -> np.random.Generator:
    """Return a generator for the independent stream ``key`` of ``spec.seed``."""
    return np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=key))


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder)."""
    share = total * np.asarray(weights, dtype=float) / np.sum(weights)
    counts = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def _normalised(weights: list[float] | np.ndarray) -> np.ndarray:
    """Scale ``weights`` to float probabilities summing to one."""
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


# --------------------------------------------------------------------------- obs / var


def _simulate_dataset(
    rng: np.random.Generator, tissue: _Tissue, n: int, donor_offset: int
) -> dict[str, np.ndarray]:
    """Draw donor, sex, sub-tissue and cell type for each cell of one dataset."""
    n_donors = int(rng.integers(2, 7))
    donor_sex = rng.choice(["female", "male", "unknown"], size=n_donors, p=[0.48, 0.48, 0.04])
    donor = rng.choice(n_donors, size=n, p=rng.dirichlet(np.full(n_donors, 3.0)))
    sub_names = [s for s, _ in tissue.sub_tissues]
    sub_w = _normalised([w for _, w in tissue.sub_tissues])
    type_names = [c for c, _ in tissue.cell_types]
    # Each dataset perturbs the tissue composition a little.
    type_w = rng.dirichlet(60.0 * _normalised([w for _, w in tissue.cell_types]))
    return {
        "donor_id": np.array([f"donor_{donor_offset + d:03d}" for d in donor], dtype=object),
        "sex": donor_sex[donor].astype(object),
        "tissue": np.array(sub_names, dtype=object)[rng.choice(len(sub_names), n, p=sub_w)],
        "cell_type": np.array(type_names, dtype=object)[rng.choice(len(type_names), n, p=type_w)],
    }


def simulate_obs(spec: AtlasSpec) -> pd.DataFrame:
    """Simulate the cell metadata.

    Cells are grouped by dataset, as in the Census; every tissue has three
    datasets of unequal size, each with its own assay, 2-6 donors and a slightly
    perturbed cell-type composition. Tissue sizes decrease along
    ``spec.tissues``; every tissue gets cells when ``n_cells >= len(tissues)``.
    Exactly ``round(n_cells * (1 - primary_fraction))`` cells, chosen at random,
    have ``is_primary_data`` False.

    Parameters
    ----------
    spec : AtlasSpec
        Atlas description.

    Returns
    -------
    pandas.DataFrame
        One row per cell with a ``RangeIndex`` equal to ``soma_joinid`` and the
        columns ``dataset_id``, ``assay``, ``cell_type``, ``donor_id``,
        ``is_primary_data`` (bool), ``sex``, ``tissue`` and ``tissue_general``
        (the others are strings).
    """
    rng = _rng(spec, _STREAM_OBS)
    n_tissues = len(spec.tissues)
    per_tissue = _allocate(spec.n_cells, 0.75 ** np.arange(n_tissues))
    if spec.n_cells >= n_tissues:  # every tissue gets at least one cell
        while (per_tissue == 0).any():
            per_tissue[np.argmax(per_tissue)] -= 1
            per_tissue[np.argmin(per_tissue)] += 1
    assay_names = list(_ASSAYS)
    assay_p = _normalised([p for _, p in _ASSAYS.values()])
    parts: list[pd.DataFrame] = []
    n_donors = 0
    for tissue_name, n_tissue in zip(spec.tissues, per_tissue, strict=True):
        tissue = _tissue_catalogue(tissue_name)
        for n_ds in _allocate(int(n_tissue), rng.dirichlet(np.full(3, 2.0))):
            dataset_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
            assay = assay_names[rng.choice(len(assay_names), p=assay_p)]
            cols = _simulate_dataset(rng, tissue, int(n_ds), n_donors)
            n_donors += 6
            if n_ds == 0:
                continue
            part = pd.DataFrame(cols)
            part["dataset_id"] = dataset_id
            part["assay"] = assay
            part["tissue_general"] = tissue_name
            parts.append(part)
    obs = pd.concat(parts, ignore_index=True)
    primary = np.ones(spec.n_cells, dtype=bool)
    n_secondary = round(spec.n_cells * (1.0 - spec.primary_fraction))
    primary[rng.choice(spec.n_cells, size=n_secondary, replace=False)] = False
    obs["is_primary_data"] = primary
    return obs.loc[:, list(_OBS_COLUMNS)]


def simulate_var(spec: AtlasSpec) -> pd.DataFrame:
    """Simulate the gene metadata.

    Parameters
    ----------
    spec : AtlasSpec
        Atlas description.

    Returns
    -------
    pandas.DataFrame
        One row per gene with a ``RangeIndex`` equal to ``soma_joinid`` and the
        columns ``feature_id`` (Ensembl-like, ``ENSG00000000001``...),
        ``feature_name`` (unique symbol-like names) and ``feature_length``
        (int64, transcript length in bases).
    """
    rng = _rng(spec, _STREAM_VAR)
    prefixes = rng.choice(len(_GENE_PREFIXES), size=spec.n_genes)
    used: dict[int, int] = {}
    names = []
    for p in prefixes:
        used[int(p)] = used.get(int(p), 0) + 1
        names.append(f"{_GENE_PREFIXES[p]}{used[int(p)]}")
    lengths = np.maximum(np.round(rng.lognormal(np.log(2500.0), 0.7, spec.n_genes)), 100)
    return pd.DataFrame(
        {
            "feature_id": [f"ENSG{i:011d}" for i in range(1, spec.n_genes + 1)],
            "feature_name": names,
            "feature_length": lengths.astype(np.int64),
        }
    )


# --------------------------------------------------------------------------- counts


@dataclass(frozen=True)
class _GeneModel:
    """Per-cell-type expression profiles and per-gene dispersion."""

    cell_types: tuple[str, ...]
    profiles: np.ndarray  # (n_types, n_genes), rows sum to one
    size_factors: np.ndarray  # (n_types,), relative library size
    theta: np.ndarray  # (n_genes,), gamma shape = 1 / dispersion


def _gene_model(spec: AtlasSpec) -> _GeneModel:
    """Build the expression model of ``spec`` (pure function of the spec)."""
    rng = _rng(spec, _STREAM_GENES)
    n_genes = spec.n_genes
    types = _cell_types(spec)
    infos = [_cell_type_info(t) for t in types]
    lineages = sorted({i.lineage for i in infos})

    # Log baseline expression: Gumbel quantiles at evenly spaced levels, in random
    # gene order, so the shape of the distribution does not vary with the seed.
    levels = (rng.permutation(n_genes) + 0.5) / n_genes
    base = np.exp(-_BASE_SCALE * np.log(-np.log(levels)))
    order = rng.permutation(n_genes)
    n_house = max(1, int(_HOUSEKEEPING_FRACTION * n_genes))
    base[order[:n_house]] *= _HOUSEKEEPING_BOOST
    base /= base.mean()  # levels below are relative to the mean gene

    # Markers and lineage modules come from the remaining genes, disjoint sets.
    pool = order[n_house:]
    n_markers = int(np.clip(round(_MARKER_FRACTION * n_genes), _MARKERS_MIN, _MARKERS_MAX))
    n_markers = min(n_markers, len(pool) // (2 * (len(types) + len(lineages))))
    n_module = math.ceil(_MODULE_RATIO * n_markers)
    split = n_markers * len(types)
    marker_sets = pool[:split].reshape(len(types), n_markers)
    module_sets = pool[split : split + n_module * len(lineages)].reshape(len(lineages), n_module)

    profiles = base * rng.lognormal(0.0, _TYPE_NOISE_SIGMA, (len(types), n_genes))
    for t, info in enumerate(infos):
        module = module_sets[lineages.index(info.lineage)]
        level = rng.lognormal(np.log(_MODULE_LEVEL), _LEVEL_SIGMA, n_module)
        profiles[t, module] = np.maximum(profiles[t, module], level)
        level = rng.lognormal(np.log(_MARKER_LEVEL), _LEVEL_SIGMA, n_markers)
        profiles[t, marker_sets[t]] = np.maximum(profiles[t, marker_sets[t]], level)
    profiles /= profiles.sum(axis=1, keepdims=True)

    theta = rng.lognormal(np.log(_THETA_MEDIAN), _THETA_SIGMA, n_genes)
    sizes = np.array([i.size_factor for i in infos])
    return _GeneModel(types, profiles, sizes, theta)


def _chunk_counts(
    spec: AtlasSpec,
    model: _GeneModel,
    chunk: int,
    type_codes: np.ndarray,
    depth: np.ndarray,
) -> sp.csr_matrix:
    """Draw the counts of every cell of RNG chunk ``chunk`` (one independent stream)."""
    rng = _rng(spec, _STREAM_COUNTS, chunk)
    n = len(type_codes)
    library = (
        _DEPTH_PER_GENE
        * spec.n_genes
        * depth
        * model.size_factors[type_codes]
        * rng.lognormal(0.0, _LIBRARY_SIGMA, n)
    )
    mean = library[:, None] * model.profiles[type_codes]
    rate = mean * rng.gamma(model.theta, 1.0 / model.theta, size=(n, spec.n_genes))
    counts = rng.poisson(rate).astype(np.float32)
    # Like a QC'd atlas, hold no empty cells: give one count to the top expected gene.
    empty = np.flatnonzero(counts.sum(axis=1) == 0)
    counts[empty, model.profiles[type_codes[empty]].argmax(axis=1)] = 1.0
    return sp.csr_matrix(counts)


def simulate_counts(spec: AtlasSpec, obs: pd.DataFrame, start: int, stop: int) -> sp.csr_matrix:
    """Simulate raw counts for cells ``[start, stop)``.

    Parameters
    ----------
    spec : AtlasSpec
        Atlas description.
    obs : pandas.DataFrame
        The full cell metadata from :func:`simulate_obs` (``n_cells`` rows; its
        ``cell_type`` and ``assay`` columns are used).
    start, stop : int
        Half-open range of cell positions, ``0 <= start <= stop <= n_cells``.

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape ``(stop - start, n_genes)``, float32 holding non-negative integers.
        The rows equal the matching rows of any other range with the same spec.

    Raises
    ------
    ValueError
        If ``obs`` does not have ``n_cells`` rows or the range is invalid.
    """
    if len(obs) != spec.n_cells:
        raise ValueError(f"obs has {len(obs)} rows; it must have n_cells={spec.n_cells}")
    if not 0 <= start <= stop <= spec.n_cells:
        raise ValueError(
            f"cell range [{start}, {stop}) is invalid; need 0 <= start <= stop <= {spec.n_cells}"
        )
    if start == stop:
        return sp.csr_matrix((0, spec.n_genes), dtype=np.float32)
    model = _gene_model(spec)
    lo = start // RNG_CHUNK_CELLS * RNG_CHUNK_CELLS
    hi = min(spec.n_cells, math.ceil(stop / RNG_CHUNK_CELLS) * RNG_CHUNK_CELLS)
    rows = obs.iloc[lo:hi]
    codes = pd.Categorical(rows["cell_type"], categories=model.cell_types).codes
    if (codes < 0).any():
        raise ValueError("obs has cell types that spec does not define; use simulate_obs(spec)")
    depth = rows["assay"].map({a: d for a, (d, _) in _ASSAYS.items()}).fillna(1.0).to_numpy()
    blocks = []
    for c0 in range(lo, hi, RNG_CHUNK_CELLS):
        c1 = min(c0 + RNG_CHUNK_CELLS, hi)
        block = _chunk_counts(
            spec, model, c0 // RNG_CHUNK_CELLS, codes[c0 - lo : c1 - lo], depth[c0 - lo : c1 - lo]
        )
        blocks.append(block[max(start, c0) - c0 : min(stop, c1) - c0])
    return sp.csr_matrix(sp.vstack(blocks, format="csr"), dtype=np.float32)


# --------------------------------------------------------------------------- writing


def _obs_schema() -> pa.Schema:
    """Return the Arrow schema of the stored ``obs`` dataframe."""
    fields = [pa.field("soma_joinid", pa.int64())]
    for name in _OBS_COLUMNS:
        kind = pa.bool_() if name == "is_primary_data" else pa.large_string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def _var_schema() -> pa.Schema:
    """Return the Arrow schema of the stored ``var`` dataframe."""
    return pa.schema(
        [
            pa.field("soma_joinid", pa.int64()),
            pa.field("feature_id", pa.large_string()),
            pa.field("feature_name", pa.large_string()),
            pa.field("feature_length", pa.int64()),
        ]
    )


def _frame_table(frame: pd.DataFrame, start: int, schema: pa.Schema) -> pa.Table:
    """Convert ``frame`` to an Arrow table with ``soma_joinid`` counting from ``start``."""
    data = frame.reset_index(drop=True).assign(
        soma_joinid=np.arange(start, start + len(frame), dtype=np.int64)
    )
    return pa.Table.from_pandas(data, schema=schema, preserve_index=False)


def _coo_table(counts: sp.csr_matrix, row_offset: int) -> pa.Table:
    """Convert ``counts`` to a SOMA COO table with rows shifted by ``row_offset``."""
    coo = counts.tocoo()
    return pa.table(
        {
            "soma_dim_0": pa.array(coo.row.astype(np.int64) + row_offset),
            "soma_dim_1": pa.array(coo.col.astype(np.int64)),
            "soma_data": pa.array(coo.data.astype(np.float32)),
        }
    )


def _local_path(uri: str) -> str:
    """Return the filesystem path of a local ``uri``; refuse remote URIs."""
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif "://" in uri:
        raise AtlasSpecError(
            f"uri={uri!r} is not supported; write_demo_atlas writes local paths only"
        )
    return os.path.abspath(uri)


def _write_experiment(path: str, spec: AtlasSpec) -> dict[str, Any]:
    """Write the whole experiment at ``path`` (which must not exist)."""
    import tiledbsoma

    obs = simulate_obs(spec)
    var = simulate_var(spec)
    nnz = 0
    with tiledbsoma.Experiment.create(path) as exp:
        exp.metadata["chunkatlas_demo_spec"] = json.dumps(asdict(spec))
        obs_df = exp.add_new_dataframe("obs", schema=_obs_schema(), domain=[(0, spec.n_cells - 1)])
        ms = exp.add_new_collection("ms")
        rna = ms.add_new_collection("RNA", tiledbsoma.Measurement)
        var_df = rna.add_new_dataframe("var", schema=_var_schema(), domain=[(0, spec.n_genes - 1)])
        var_df.write(_frame_table(var, 0, _var_schema()))
        x = rna.add_new_collection("X")
        raw = x.add_new_sparse_ndarray("raw", type=pa.float32(), shape=(spec.n_cells, spec.n_genes))
        for start in range(0, spec.n_cells, spec.block_cells):
            stop = min(start + spec.block_cells, spec.n_cells)
            obs_df.write(_frame_table(obs.iloc[start:stop], start, _obs_schema()))
            counts = simulate_counts(spec, obs, start, stop)
            raw.write(_coo_table(counts, start))
            nnz += counts.nnz
    per_tissue = obs["tissue_general"].value_counts()
    return {
        "n_cells": spec.n_cells,
        "n_genes": spec.n_genes,
        "nnz": int(nnz),
        "cells_per_tissue_general": {t: int(per_tissue.get(t, 0)) for t in spec.tissues},
        "n_primary": int(obs["is_primary_data"].sum()),
    }


def write_demo_atlas(uri: str, spec: AtlasSpec) -> dict[str, Any]:
    """Write a Census-shaped demo TileDB-SOMA Experiment at ``uri``.

    The experiment is built in a hidden temporary sibling of ``uri`` and renamed
    into place once complete (:func:`chunkatlas.storeio.atomic_directory`), so
    ``uri`` never holds a partial experiment; the temporary is removed if
    writing fails.

    Parameters
    ----------
    uri : str
        Local path (or ``file://`` URI) of the experiment; must not exist.
    spec : AtlasSpec
        Atlas description; cells are generated and written ``block_cells`` at
        a time.

    Returns
    -------
    dict
        ``n_cells``, ``n_genes``, ``nnz`` (stored non-zeros of ``X['raw']``),
        ``cells_per_tissue_general`` (tissue -> number of cells) and
        ``n_primary`` (cells with ``is_primary_data`` True).

    Raises
    ------
    ChunkatlasError
        If ``uri`` already exists.
    AtlasSpecError
        If ``uri`` is not local (also a ``ValueError``).
    """
    path = _local_path(uri)
    with atomic_directory(path) as tmp:
        return _write_experiment(str(tmp), spec)
