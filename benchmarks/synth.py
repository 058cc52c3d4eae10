"""Synthetic atlas-sized AnnData zarr stores for the benchmarks.

A pool of distinct cells is simulated with chunkatlas's count model
(:func:`chunkatlas.ingest.demo.simulate_counts`: negative-binomial counts over cell-type profiles,
~6 % non-zero at 20,000 genes); a store of any size is then made by drawing cells from the pool
and thinning each one's counts binomially (a random sequencing depth per cell), so every cell is
distinct while generation costs O(nnz).  X is written with anndata as CSR in row blocks, data and
indices chunked to hold ``chunk`` cells, in zarr v3 with anndata's codecs, as ``chunkatlas rechunk``
would.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import zarr
from anndata.io import sparse_dataset, write_elem

from chunkatlas.ingest.demo import DemoSpec, simulate_counts, simulate_obs
from chunkatlas.store import new_zarr_store


@dataclass(frozen=True)
class Pool:
    """Distinct simulated cells to draw from."""

    counts: sp.csr_matrix
    cell_type: np.ndarray
    var_names: pd.Index


def make_pool(n_cells: int, n_genes: int, seed: int = 0) -> Pool:
    """Simulate ``n_cells`` cells x ``n_genes`` genes with the demo atlas's count model."""
    spec = DemoSpec(n_cells=n_cells, n_genes=n_genes, seed=seed)
    obs = simulate_obs(spec)
    blocks = [
        simulate_counts(spec, obs, lo, min(lo + 4096, n_cells)) for lo in range(0, n_cells, 4096)
    ]
    counts = sp.csr_matrix(sp.vstack(blocks, format="csr"), dtype=np.float32)
    var_names = pd.Index([f"ENSG{i:011d}" for i in range(1, n_genes + 1)])
    return Pool(counts, obs["cell_type"].to_numpy(dtype=object), var_names)


def draw_block(
    pool: Pool, rng: np.random.Generator, n: int, depth: tuple[float, float] = (0.5, 1.0)
) -> tuple[sp.csr_matrix, np.ndarray]:
    """``n`` new cells: pool cells with counts thinned binomially at a per-cell depth drawn
    uniformly from ``depth`` (lower depths store fewer values per cell).

    A cell that thinning would leave empty keeps its pool counts (as after QC, no cell is empty).
    """
    rows = rng.integers(0, pool.counts.shape[0], n)
    block = pool.counts[rows]
    original = block.data.copy()
    depth = np.repeat(rng.uniform(*depth, n), np.diff(block.indptr))
    block.data = rng.binomial(original.astype(np.int64), depth).astype(np.float32)
    sums = np.add.reduceat(block.data, block.indptr[:-1]) if block.nnz else np.zeros(n)
    for row in np.flatnonzero(sums == 0):
        lo, hi = block.indptr[row], block.indptr[row + 1]
        block.data[lo:hi] = original[lo:hi]
    block.eliminate_zeros()
    return block, pool.cell_type[rows]


def write_store(
    path: str | Path,
    pool: Pool,
    n_cells: int,
    *,
    chunk: int = 10_000,
    seed: int = 1,
    depth: tuple[float, float] = (0.5, 1.0),
) -> Path:
    """Write an AnnData zarr store of ``n_cells`` cells drawn from ``pool``; return its path."""
    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    with new_zarr_store(path) as root:  # zarr v3, codecs as chunkatlas rechunk writes them
        fill_store(root, pool, n_cells, chunk, np.random.default_rng(seed), depth)
    return path


def fill_store(
    root: zarr.Group,
    pool: Pool,
    n_cells: int,
    chunk: int,
    rng: np.random.Generator,
    depth: tuple[float, float],
) -> None:
    per_cell = pool.counts.nnz / pool.counts.shape[0] * sum(depth) / 2
    chunk_nnz = max(1, math.ceil(per_cell * chunk))
    cell_types, raw_sums, nnzs = [], [], []
    for lo in range(0, n_cells, chunk):
        block, types = draw_block(pool, rng, min(chunk, n_cells - lo), depth)
        cell_types.append(types)
        raw_sums.append(np.asarray(block.sum(axis=1, dtype=np.float64)).ravel())
        nnzs.append(np.diff(block.indptr).astype(np.int64))
        if lo == 0:
            write_elem(root, "X", block, dataset_kwargs={"chunks": (chunk_nnz,)})
        else:
            sparse_dataset(root["X"]).append(block)
    obs = pd.DataFrame(  # raw_sum and nnz per cell, as the CELLxGENE Census records them
        {
            "cell_type": pd.Categorical(np.concatenate(cell_types)),
            "raw_sum": np.concatenate(raw_sums),
            "nnz": np.concatenate(nnzs),
        },
        index=pd.Index([f"cell{i}" for i in range(n_cells)]),
    )
    var = pd.DataFrame(index=pool.var_names)
    shell = ad.AnnData(obs=obs, var=var)
    for key in ("obs", "var"):
        write_elem(root, key, getattr(shell, key))
    for key in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
        write_elem(root, key, {})
    root.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
