"""The same input and settings give byte-identical stores, every time.

(Identical analysis results: tests/analysis/test_determinism.py.  Whole workflow runs are
compared in tests/test_faults.py: a run interrupted and resumed against an uninterrupted one,
store chunk bytes and hvg_pca results alike.)
"""

from chunkatlas.rewrite import consolidate_store, rechunk_store


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
