"""The demo atlas's cells, genes and counts, as pure functions of its spec (the count model is
described in :mod:`chunkatlas.ingest.demo`)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from chunkatlas.ingest.demo._catalogue import (
    _ASSAYS,
    _GENE_PREFIXES,
    _cell_type_info,
    _cell_types,
    _Tissue,
    _tissue_catalogue,
)
from chunkatlas.ingest.demo._spec import DemoSpec

#: Cells per independent random stream in :func:`simulate_counts`.
RNG_CHUNK_CELLS = 256

# Independent random streams derived from the seed (``SeedSequence.spawn_key``).
_STREAM_OBS = 1
_STREAM_VAR = 2
_STREAM_GENES = 3
_STREAM_COUNTS = 4
_STREAM_DATASETS = 5
# Census schema 2.4.0 (release 2025-11-08): ``disease`` may hold several values joined by
# " || ", and ``feature_name`` is no longer unique.  The demo atlas has both shapes: each donor's
# disease, and every DUPLICATE_NAME_EVERY-th gene named as the gene before it.
# A dataset's donors are numbered from a multiple of 6: its second donor has two diseases.
_DISEASES = ("normal", "COVID-19 || pneumonia", "normal", "COVID-19", "normal", "asthma")
DUPLICATE_NAME_EVERY = 97

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
# Batch effects: each dataset scales its cells' depth, and shifts a share of the genes (its
# protocol's capture biases), so that a selection over all cells picks up dataset-specific genes.
_DATASET_DEPTH_SIGMA = 0.4  # sd of log depth factor per dataset
_DATASET_GENE_FRACTION = 0.05  # share of genes a dataset shifts
_DATASET_GENE_SIGMA = 2.0  # sd of log shift of those genes

_OBS_COLUMNS = (
    "dataset_id",
    "assay",
    "cell_type",
    "disease",
    "donor_id",
    "is_primary_data",
    "sex",
    "tissue",
    "tissue_general",
)
_VAR_COLUMNS = ("feature_id", "feature_name", "feature_length")
#: The obs and var columns of the written atlas (:mod:`._soma`): SOMA's joinid, the simulated
#: columns and, in obs, each cell's totals.
STORED_OBS_COLUMNS = ("soma_joinid", *_OBS_COLUMNS, "raw_sum", "nnz")
STORED_VAR_COLUMNS = ("soma_joinid", *_VAR_COLUMNS)


def _rng(spec: DemoSpec, *key: int) -> np.random.Generator:
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


def simulate_obs(spec: DemoSpec) -> pd.DataFrame:
    """Simulate the cell metadata.

    Cells are grouped by dataset, as in the Census; every tissue has three
    datasets of unequal size, each with its own assay, 2-6 donors and a slightly
    perturbed cell-type composition. Tissue sizes decrease along
    ``spec.tissues``; every tissue gets cells when ``n_cells >= len(tissues)``.
    Exactly ``round(n_cells * (1 - primary_fraction))`` cells, chosen at random,
    have ``is_primary_data`` False.

    Parameters
    ----------
    spec : DemoSpec
        Atlas description.

    Returns
    -------
    pandas.DataFrame
        One row per cell with a ``RangeIndex`` equal to ``soma_joinid`` and the
        columns ``dataset_id``, ``assay``, ``cell_type``, ``disease`` (per donor; some
        hold two values joined by " || "), ``donor_id``, ``is_primary_data`` (bool), ``sex``,
        ``tissue`` and ``tissue_general`` (the others are strings).  The written atlas's obs
        also has each cell's ``raw_sum`` and ``nnz``, which come from its counts
        (:mod:`chunkatlas.ingest._cell_totals`).
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
    obs["disease"] = donor_diseases(obs["donor_id"])
    return obs.loc[:, list(_OBS_COLUMNS)]


def donor_diseases(donors: pd.Series) -> np.ndarray:
    """Each cell's disease: its donor's, by donor number (``donor_NNN``), so that every dataset
    has a donor with two (the other columns and the counts stay as they were)."""
    number = donors.str.removeprefix("donor_").astype(int).to_numpy()
    return np.array(_DISEASES, dtype=object)[number % len(_DISEASES)]


def simulate_var(spec: DemoSpec) -> pd.DataFrame:
    """The gene metadata of ``spec``, a row per gene (index: ``soma_joinid``): ``feature_id``
    (Ensembl-like, ``ENSG00000000001``...), ``feature_name`` (symbol-like names,
    a few shared by two genes as in schema 2.4.0) and
    ``feature_length`` (int64, transcript length in bases)."""
    rng = _rng(spec, _STREAM_VAR)
    prefixes = rng.choice(len(_GENE_PREFIXES), size=spec.n_genes)
    used: dict[int, int] = {}
    names = []
    for p in prefixes:
        used[int(p)] = used.get(int(p), 0) + 1
        names.append(f"{_GENE_PREFIXES[p]}{used[int(p)]}")
    for i in range(DUPLICATE_NAME_EVERY, spec.n_genes, DUPLICATE_NAME_EVERY):
        names[i] = names[i - 1]  # two Ensembl ids, one symbol (schema 2.4.0)
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


def _gene_model(spec: DemoSpec) -> _GeneModel:
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


def dataset_effect(spec: DemoSpec, dataset_id: str) -> tuple[float, np.ndarray]:
    """The batch effect of one dataset: its depth factor and per-gene factors (most 1), a pure
    function of the spec and the dataset's id."""
    rng = _rng(spec, _STREAM_DATASETS, uuid.UUID(dataset_id).int % 2**32)
    depth = float(rng.lognormal(0.0, _DATASET_DEPTH_SIGMA))
    genes = np.ones(spec.n_genes)
    shifted = rng.random(spec.n_genes) < _DATASET_GENE_FRACTION
    genes[shifted] = rng.lognormal(0.0, _DATASET_GENE_SIGMA, int(shifted.sum()))
    return depth, genes


def _chunk_counts(
    spec: DemoSpec,
    model: _GeneModel,
    chunk: int,
    type_codes: np.ndarray,
    depth: np.ndarray,
    gene_effect: np.ndarray,
) -> sp.csr_matrix:
    """Draw the counts of every cell of RNG chunk ``chunk`` (one independent stream); each
    cell's expected counts are scaled by its dataset's ``gene_effect`` (cells x genes)."""
    rng = _rng(spec, _STREAM_COUNTS, chunk)
    n = len(type_codes)
    library = (
        _DEPTH_PER_GENE
        * spec.n_genes
        * depth
        * model.size_factors[type_codes]
        * rng.lognormal(0.0, _LIBRARY_SIGMA, n)
    )
    mean = library[:, None] * model.profiles[type_codes] * gene_effect
    rate = mean * rng.gamma(model.theta, 1.0 / model.theta, size=(n, spec.n_genes))
    counts = rng.poisson(rate).astype(np.float32)
    # Like a QC'd atlas, hold no empty cells: give one count to the top expected gene.
    empty = np.flatnonzero(counts.sum(axis=1) == 0)
    counts[empty, model.profiles[type_codes[empty]].argmax(axis=1)] = 1.0
    return sp.csr_matrix(counts)


def simulate_counts(spec: DemoSpec, obs: pd.DataFrame, start: int, stop: int) -> sp.csr_matrix:
    """Simulate raw counts for cells ``[start, stop)``.

    Parameters
    ----------
    spec : DemoSpec
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
    datasets, dataset_codes = np.unique(rows["dataset_id"].to_numpy(), return_inverse=True)
    effects = [dataset_effect(spec, str(d)) for d in datasets]
    depth = depth * np.array([d for d, _ in effects])[dataset_codes]
    gene_effects = np.array([g for _, g in effects])
    blocks = []
    for c0 in range(lo, hi, RNG_CHUNK_CELLS):
        c1 = min(c0 + RNG_CHUNK_CELLS, hi)
        cells = slice(c0 - lo, c1 - lo)
        block = _chunk_counts(
            spec,
            model,
            c0 // RNG_CHUNK_CELLS,
            codes[cells],
            depth[cells],
            gene_effects[dataset_codes[cells]],
        )
        blocks.append(block[max(start, c0) - c0 : min(stop, c1) - c0])
    return sp.csr_matrix(sp.vstack(blocks, format="csr"), dtype=np.float32)
