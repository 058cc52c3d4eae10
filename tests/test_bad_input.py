"""Bad input: one line naming the bad value, no traceback, no output left behind."""

import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.rewrite import rechunk_store
from chunkatlas.store import atomic_directory, read_dask_backed, redact


def counts_store(path, obs_names=None, var_names=None):
    rng = np.random.default_rng(0)
    adata = ad.AnnData(sp.csr_matrix(rng.poisson(1, (6, 4)).astype(np.float32)))
    if obs_names is not None:
        adata.obs_names = obs_names
    if var_names is not None:
        adata.var_names = var_names
    adata.write_zarr(path)
    return path


@pytest.mark.parametrize(
    ("axis", "names"),
    [("obs", ["a", "b", "c", "a", "d", "e"]), ("var", ["g1", "g2", "g2", "g3"])],
)
@pytest.mark.filterwarnings("ignore:(Variable|Observation) names are not unique")
def test_duplicate_names_are_refused(tmp_path, axis, names):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = counts_store(tmp_path / "dup.zarr", **{f"{axis}_names": names})
    first = pd.Index(names)[pd.Index(names).duplicated()][0]
    with pytest.raises(ChunkatlasError, match=f"duplicate {axis} names \\(first: '{first}'\\)"):
        read_dask_backed(store, 2)
    with pytest.raises(ChunkatlasError, match="duplicate"):
        rechunk_store(store, tmp_path / "out.zarr", 2)
    assert not (tmp_path / "out.zarr").exists()


def test_store_without_x_is_refused(tmp_path):
    adata = ad.AnnData(obs=pd.DataFrame(index=["a", "b"]))
    adata.write_zarr(tmp_path / "nox.zarr")
    group = zarr.open_group(tmp_path / "nox.zarr")
    if "X" in group:
        del group["X"]
    with pytest.raises(ChunkatlasError, match="AnnData store has no X"):
        read_dask_backed(tmp_path / "nox.zarr", 2)


def test_killed_writer_leftovers_are_cleaned_and_never_read(tmp_path):
    stale = tmp_path / ".out.zarr.tmp-99999"
    stale.mkdir()
    (stale / "junk").write_text("half")
    with pytest.raises(ChunkatlasError, match="store not found"):
        read_dask_backed(tmp_path / "out.zarr", 2)
    with atomic_directory(tmp_path / "out.zarr") as tmp:
        tmp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def test_redact_masks_credentials():
    assert redact("s3://AKIAXX:secret@bucket/key") == "s3://***@bucket/key"
    assert redact("https://h/x.zarr?X-Amz-Signature=abc&part=1") == (
        "https://h/x.zarr?X-Amz-Signature=***&part=1"
    )


def test_cli_error_redacts_credentials(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chunkatlas.cli",
            "rechunk",
            "https://user:hunter2@host/x.zarr",
            str(tmp_path / "o.zarr"),
            "--chunk",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "hunter2" not in done.stderr
    assert "https://***@host/x." in done.stderr.splitlines()[-1]


@pytest.mark.workflow
def test_snakemake_job_with_bad_input_fails_with_one_line_and_no_output(tmp_path):
    import yaml

    from .support.workflow_runs import REPO, snakemake

    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config["demo_atlas"]["n_cells"] = 600
    config["tissues"] = ["liver"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, "--cores", "1", "--configfile", str(tmp_path / "c.yaml"))
    assert done.returncode != 0
    expected = (
        "chunkatlas: error: tissue 'liver' matches no cells in results/test/demo_atlas.soma "
        '(filter: tissue_general == "liver" and is_primary_data == True)'
    )
    assert expected in done.stderr.splitlines()
    assert not (tmp_path / "results/test/liver/fetched.zarr").exists()
    assert not list((tmp_path / "results").rglob(".*.tmp-*"))


def test_profiles_never_keep_incomplete_outputs():
    import yaml

    from .support.workflow_runs import REPO

    for profile in (REPO / "profiles").glob("*/config.yaml"):
        settings = yaml.safe_load(profile.read_text()) or {}
        assert not settings.get("keep-incomplete"), profile


@pytest.mark.workflow
def test_secrets_in_config_never_reach_outputs_or_logs(tmp_path):
    import yaml

    from .support.workflow_runs import REPO, snakemake, store_dir

    secret = "wJalrXUtnFEMI-K7MDENG-not-a-real-key"
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config["demo_atlas"]["n_cells"] = 600
    config["source"] = {"tiledb_config": {"vfs.s3.aws_secret_access_key": secret}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(
        tmp_path,
        f"results/test/{store_dir('lung', 'cells', 300)}/store.manifest.json",
        "--cores",
        "1",
        "--configfile",
        str(tmp_path / "c.yaml"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert secret not in done.stdout + done.stderr
    for path in [*(tmp_path / "results").rglob("*"), *(tmp_path / ".snakemake").rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("engine", ["fused", "scanpy"])
@pytest.mark.parametrize(
    ("value", "flavor", "needle"),
    [
        (-2.0, "seurat", "has 1 negative values"),
        (np.nan, "cell_ranger", "has 1 NaN or infinite values"),
        (0.5, "seurat_v3", "has 1 non-integer values; this HVG flavor needs raw integer counts"),
    ],
)
def test_analysis_refuses_values_that_are_not_counts(tmp_path, engine, value, flavor, needle):
    from chunkatlas.analysis import AnalysisParams, analyze_store

    rng = np.random.default_rng(1)
    counts = rng.poisson(2, (60, 30)).astype(np.float32)
    counts[7, 3] = value
    ad.AnnData(sp.csr_matrix(counts)).write_zarr(tmp_path / "in.zarr")
    with pytest.raises(ChunkatlasError, match=needle):
        analyze_store(
            tmp_path / "in.zarr",
            tmp_path / "out.zarr",
            rows=20,
            params=AnalysisParams(flavor=flavor, n_top_genes=10, n_comps=3, engine=engine),
        )
    assert not (tmp_path / "out.zarr").exists()


def test_fused_engine_refuses_duplicate_names(tmp_path):
    import warnings

    from chunkatlas.analysis import AnalysisParams, analyze_store

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = counts_store(tmp_path / "dup.zarr", var_names=["g1", "g2", "g2", "g3"])
    with pytest.raises(ChunkatlasError, match="duplicate var names \\(first: 'g2'\\)"):
        analyze_store(
            store,
            tmp_path / "out.zarr",
            rows=2,
            params=AnalysisParams(n_top_genes=3, n_comps=2),
        )
    assert not (tmp_path / "out.zarr").exists()


def damage_chunk(chunk, how: str) -> None:
    """Overwrite the first 64 bytes of a chunk file (its frame header: damage further in may
    still decode, to other numbers, where a codec keeps no checksum), or cut it in half."""
    data = chunk.read_bytes()
    damaged = data[: len(data) // 2] if how == "truncated" else b"\xff" * 64 + data[64:]
    chunk.write_bytes(damaged)


@pytest.mark.parametrize(
    ("engine", "how", "zarr_format"),
    [
        ("fused", "corrupt", 3),
        ("scanpy", "corrupt", 2),
        ("fused", "truncated", 2),
        ("scanpy", "truncated", 3),
    ],
)
def test_damaged_chunk_without_manifest_is_named_in_one_line(
    fetched, tmp_path, engine, how, zarr_format
):
    from .support.stores import chunk_key

    store = tmp_path / "x.zarr"  # no manifest beside it: nothing checks the chunks beforehand
    rechunk_store(fetched, store, 200, zarr_format=zarr_format)
    key = f"X/data/{chunk_key(store, 'X/data', 1)}"
    damage_chunk(store / key, how)
    out = tmp_path / "out.zarr"
    done = subprocess.run(
        [sys.executable, "-m", "chunkatlas.cli", "analyze", str(store), str(out), "--chunk", "200"]
        + ["--n-top-genes", "100", "--n-comps", "10", "--engine", engine],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    # raised on a Dask worker, re-raised in the client: one line, no client traceback
    assert done.stderr.splitlines()[-1].startswith(
        f"chunkatlas: error: store {store}: chunk '{key}' cannot be decoded (corrupt?): "
    ), done.stderr[-3000:]
    assert "Traceback (most recent call last)" not in done.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["x.zarr"]


@pytest.mark.parametrize("engine", ["fused", "scanpy"])
def test_damaged_chunk_of_dense_x_is_named(tmp_path, engine):
    import pickle

    from chunkatlas.analysis import AnalysisParams, analyze_store

    from .support.stores import chunk_key

    store = tmp_path / "dense.zarr"
    counts = np.random.default_rng(4).poisson(2, (90, 30)).astype(np.float32)
    ad.AnnData(counts).write_zarr(store, chunks=(30, 30))
    key = f"X/{chunk_key(store, 'X', 1, 0)}"
    damage_chunk(store / key, "corrupt")
    with pytest.raises(ChunkatlasError) as caught:
        analyze_store(
            store,
            tmp_path / "out.zarr",
            rows=30,
            params=AnalysisParams(n_top_genes=10, n_comps=3, engine=engine),
        )
    assert str(caught.value).startswith(f"store {store}: chunk '{key}' cannot be decoded")
    # what a Dask worker sends back: the same one line
    assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)
    assert not (tmp_path / "out.zarr").exists()


def test_fetch_emits_no_warning(atlas, tmp_path):
    import warnings

    from chunkatlas.ingest import fetch_tissue

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fetch_tissue(atlas, "lung", tmp_path / "lung.zarr", chunk_rows=300)
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
    # the CLI's log, where Python warnings are logged too (logging.captureWarnings)
    done = subprocess.run(
        [sys.executable, "-m", "chunkatlas.cli", "fetch", atlas, "lung", str(tmp_path / "c.zarr")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line for line in done.stderr.splitlines() if " WARNING " in line] == []
