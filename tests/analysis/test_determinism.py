"""The same store and settings give identical analysis results, every time.

(Byte-identical stores: tests/rewrite/test_determinism.py.  Whole workflow runs are compared
in tests/test_faults.py: a run interrupted and resumed against an uninterrupted one, store chunk
bytes and hvg_pca results alike.)
"""

import anndata as ad
import numpy as np

from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store


def test_analysis_twice_gives_identical_results(consolidated, tmp_path):
    store, _ = consolidated
    params = AnalysisParams(n_top_genes=120, n_comps=15)
    for name in ("a", "b"):
        analyze_store(
            store,
            tmp_path / f"{name}.zarr",
            task_cells=130,
            params=params,
            cluster=ClusterSettings(workers=2),
        )
    first, second = ad.read_zarr(tmp_path / "a.zarr"), ad.read_zarr(tmp_path / "b.zarr")
    np.testing.assert_array_equal(first.var["highly_variable"], second.var["highly_variable"])
    np.testing.assert_array_equal(first.obsm["X_pca"], second.obsm["X_pca"])
    np.testing.assert_array_equal(first.varm["PCs"], second.varm["PCs"])
