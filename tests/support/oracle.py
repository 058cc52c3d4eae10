"""In-memory scanpy on the same store: the reference every analysis result must match."""

from __future__ import annotations

import anndata as ad
import numpy as np
import scanpy as sc


def in_memory_reference(
    store, flavor: str, n_top_genes: int, n_comps: int, batch_key: str | None = None
) -> ad.AnnData:
    """scanpy's recipe in memory; seurat_v3(_paper) selects HVGs on the raw counts, before
    normalising."""
    adata = ad.read_zarr(store)
    on_counts = flavor.startswith("seurat_v3")
    hvg = {"flavor": flavor, "n_top_genes": n_top_genes, "batch_key": batch_key}
    if on_counts:
        sc.pp.highly_variable_genes(adata, **hvg)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    if not on_counts:
        sc.pp.highly_variable_genes(adata, **hvg)
    sc.pp.pca(adata, n_comps=n_comps, mask_var="highly_variable")
    return adata


def assert_matches_reference(result: ad.AnnData, reference: ad.AnnData, n_pcs: int = 20) -> None:
    """Identical HVG mask; each of the first ``n_pcs`` PCs correlates with |r| >= 0.999."""
    np.testing.assert_array_equal(
        result.var["highly_variable"].to_numpy(), reference.var["highly_variable"].to_numpy()
    )
    ours, theirs = np.asarray(result.obsm["X_pca"]), np.asarray(reference.obsm["X_pca"])
    assert ours.shape == theirs.shape
    for pc in range(min(n_pcs, ours.shape[1])):
        r = np.corrcoef(ours[:, pc], theirs[:, pc])[0, 1]
        assert abs(r) >= 0.999, f"PC{pc + 1}: |corr| = {abs(r):.5f}"
