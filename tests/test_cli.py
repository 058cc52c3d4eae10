import json
import subprocess
import sys

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from chunkatlas.cli import main

from .oracle import assert_matches_reference, in_memory_reference
from .stores import chunk_key


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chunkatlas.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_every_stage_runs_outside_snakemake(atlas, tmp_path):
    fetched, store = tmp_path / "blood.zarr", tmp_path / "store.zarr"
    assert main(["fetch", atlas, "blood", str(fetched), "--chunk-rows", "250"]) == 0
    assert main(["rechunk", str(fetched), str(store), "--chunk", "120"]) == 0
    assert main(["consolidate", str(store)]) == 0
    manifest = json.loads((tmp_path / "store.manifest.json").read_text())
    assert manifest["consolidated"]
    out, plot = tmp_path / "hvg_pca.zarr", tmp_path / "pca.png"
    assert (
        main(
            [
                "analyze",
                str(store),
                str(out),
                "--chunk",
                "120",
                "--workers",
                "2",
                "--n-top-genes",
                "120",
                "--n-comps",
                "20",
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    assert_matches_reference(ad.read_zarr(out), in_memory_reference(store, "seurat", 120, 20))
    assert plot.read_bytes()[:4] == b"\x89PNG"

    # a chunk damaged after consolidation: analyze refuses the store, naming the chunk
    chunk = store / "X" / "data" / chunk_key(store, "X/data", 1)
    chunk.write_bytes(chunk.read_bytes()[:-3])
    with pytest.raises(SystemExit):
        main(["analyze", str(store), str(tmp_path / "again.zarr"), "--chunk", "120"])
    assert not (tmp_path / "again.zarr").exists()


def test_analyze_accepts_any_anndata_store_with_counts(tmp_path):
    rng = np.random.default_rng(1)
    counts = sp.csr_matrix(rng.negative_binomial(1, 0.7, size=(300, 120)).astype(np.float32))
    adata = ad.AnnData(counts)
    adata.obs["cell_type"] = rng.choice(["x", "y", "z"], 300)
    adata.write_zarr(tmp_path / "any.zarr")
    out = tmp_path / "res.zarr"
    done = run_cli(
        "analyze",
        str(tmp_path / "any.zarr"),
        str(out),
        "--chunk",
        "64",
        "--workers",
        "1",
        "--n-top-genes",
        "40",
        "--n-comps",
        "10",
    )
    assert done.returncode == 0, done.stderr
    assert_matches_reference(
        ad.read_zarr(out), in_memory_reference(tmp_path / "any.zarr", "seurat", 40, 10), n_pcs=10
    )


def test_bad_input_is_one_line_without_traceback(tmp_path):
    done = run_cli(
        "analyze", str(tmp_path / "missing.zarr"), str(tmp_path / "o.zarr"), "--chunk", "10"
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"chunkatlas: error: store not found: {tmp_path / 'missing.zarr'}"
    ]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o.zarr").exists()
    bad = run_cli("rechunk", "a", "b", "--chunk", "0")
    assert bad.returncode == 2 and "'0' is not a positive integer" in bad.stderr
