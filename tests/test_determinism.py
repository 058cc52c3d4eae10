"""The same input and settings give byte-identical stores and identical results, every time.

(Whole workflow runs are compared in tests/test_faults.py: a run interrupted and resumed
against an uninterrupted one, store chunk bytes and hvg_pca results alike.)
"""

import anndata as ad
import numpy as np

from chunkatlas.analysis._analyze import AnalysisParams, analyze_store
from chunkatlas.analysis._client import ClusterSettings
from chunkatlas.rewrite._consolidate import consolidate_store
from chunkatlas.rewrite._rechunk import rechunk_store


def chunk_bytes(store):
    return {
        str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()
    }


def test_rechunk_twice_gives_byte_identical_stores(fetched, tmp_path):
    for name in ("a", "b"):
        rechunk_store(fetched, tmp_path / name / "store.zarr", 175)
        consolidate_store(tmp_path / name / "store.zarr", tmp_path / name / "m.json")
    assert chunk_bytes(tmp_path / "a" / "store.zarr") == chunk_bytes(tmp_path / "b" / "store.zarr")
    assert (tmp_path / "a" / "m.json").read_text() == (tmp_path / "b" / "m.json").read_text()


def test_analysis_twice_gives_identical_results(consolidated, tmp_path):
    store, _ = consolidated
    params = AnalysisParams(n_top_genes=120, n_comps=15)
    for name in ("a", "b"):
        analyze_store(
            store,
            tmp_path / f"{name}.zarr",
            rows=130,
            params=params,
            cluster=ClusterSettings(workers=2),
        )
    first, second = ad.read_zarr(tmp_path / "a.zarr"), ad.read_zarr(tmp_path / "b.zarr")
    np.testing.assert_array_equal(first.var["highly_variable"], second.var["highly_variable"])
    np.testing.assert_array_equal(first.obsm["X_pca"], second.obsm["X_pca"])
    np.testing.assert_array_equal(first.varm["PCs"], second.varm["PCs"])
