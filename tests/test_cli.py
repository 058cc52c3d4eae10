import json
import subprocess
import sys

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from chunkatlas.cli import main

from .support.oracle import assert_matches_reference, in_memory_reference
from .support.stores import chunk_key


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chunkatlas.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_every_stage_runs_outside_snakemake(atlas, tmp_path):
    fetched, store = tmp_path / "blood.zarr", tmp_path / "store.zarr"
    assert main(["fetch", atlas, "blood", str(fetched), "--fetch-chunk-rows", "250"]) == 0
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
        "--task-cells",
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


def test_cells_per_task_have_their_own_option_and_the_old_one_still_works(tmp_path):
    """``--task-cells`` (cells per Dask task); ``--chunk``, its old name, is taken too, and
    the two disagreeing is one line naming both, before anything is read."""
    from chunkatlas.cli import build_parser, task_cells_of

    parse = build_parser().parse_args
    assert task_cells_of(parse(["analyze", "s.zarr", "o.zarr", "--task-cells", "64"])) == 64
    assert task_cells_of(parse(["analyze", "s.zarr", "o.zarr", "--chunk", "64"])) == 64
    both = ["analyze", "s.zarr", "o.zarr", "--task-cells", "64", "--chunk", "64"]
    assert task_cells_of(parse(both)) == 64
    assert task_cells_of(parse(["analyze", "s.zarr", "o.zarr"])) is None
    done = run_cli("analyze", "s.zarr", "o.zarr", "--task-cells", "64", "--chunk", "100")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "chunkatlas: error: --task-cells 64 and --chunk 100 disagree: --chunk is the old name "
        "of --task-cells (cells per Dask task); give --task-cells only"
    ]
    assert "cells per Dask task" in " ".join(run_cli("analyze", "--help").stdout.split())


def test_the_cli_takes_every_setting_the_workflow_uses():
    """Each stage's settings are config keys the CLI offers: nothing only the workflow can do."""
    from dataclasses import fields

    from chunkatlas.analysis import AnalysisParams, ClusterSettings
    from chunkatlas.cli import COMMAND_KEYS
    from chunkatlas.config import load_schema
    from chunkatlas.ingest import SourceSettings

    fetch_keys = {f"source.{f.name}" for f in fields(SourceSettings)} - {"source.uri"}
    assert fetch_keys | {"remote.attempts", "remote.timeout_seconds"} <= set(COMMAND_KEYS["fetch"])
    assert {f"analysis.{f.name}" for f in fields(AnalysisParams)} <= set(COMMAND_KEYS["analyze"])
    dask = set(load_schema()["properties"]["dask"]["properties"])
    assert {f"dask.{key}" for key in dask} <= set(COMMAND_KEYS["analyze"])
    assert {f.name for f in fields(ClusterSettings)} - {"workers", "memory_mb", "slurm"} <= dask


def test_help_shows_the_config_defaults():
    from chunkatlas.config import load_schema

    schema = load_schema()["properties"]["analysis"]["properties"]
    done = run_cli("analyze", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert f"(default: {schema['n_top_genes']['default']}); config analysis.n_top_genes" in text
    assert "--flavor {seurat,cell_ranger,seurat_v3,seurat_v3_paper}" in text


def test_fetch_reads_an_h5ad_source_and_options_override_the_configfile(fetched, tmp_path):
    import yaml

    adata = ad.read_zarr(fetched)
    adata.obs["part"] = np.where(np.arange(adata.n_obs) % 3 == 0, "a", "b")
    adata.write_h5ad(tmp_path / "source.h5ad")
    config = {"source": {"uri": "ignored", "kind": "anndata", "tissue_column": "cell_type"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "a.zarr"
    args = ["fetch", str(tmp_path / "source.h5ad"), "a", str(out)]
    args += ["--configfile", str(tmp_path / "config.yaml"), "--tissue-column", "part", "--dense"]
    assert main(args) == 0
    copy = ad.read_zarr(out)
    assert copy.n_obs == int((adata.obs["part"] == "a").sum())
    assert isinstance(copy.X, np.ndarray)  # --dense was applied
    np.testing.assert_array_equal(copy.X, adata[adata.obs["part"] == "a"].X.toarray())


def test_bad_option_values_name_the_option(tmp_path):
    done = run_cli("analyze", "in.zarr", "out.zarr", "--chunk", "5", "--n-top-genes", "0")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "chunkatlas: error: --n-top-genes: 0 is less than the minimum of 1"
    ]
    missing = run_cli("analyze", "in.zarr", "out.zarr", "--chunk", "5", "--configfile", "no.yaml")
    assert missing.stderr.strip().splitlines() == [
        "chunkatlas: error: config file 'no.yaml' does not exist"
    ]


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    """The lung of a demo atlas of 8,000 cells, made with the CLI: three datasets of 770 to
    1,866 cells, enough for seurat_v3's per-dataset loess."""
    from chunkatlas.ingest.demo import DemoSpec, write_demo_atlas

    where = tmp_path_factory.mktemp("demo-cli")
    write_demo_atlas(str(where / "atlas.soma"), DemoSpec(n_cells=8000, n_genes=400, seed=7))
    fetched, store = where / "lung.zarr", where / "store.zarr"
    assert main(["fetch", str(where / "atlas.soma"), "lung", str(fetched)]) == 0
    assert main(["rechunk", str(fetched), str(store), "--chunk", "500"]) == 0
    assert main(["consolidate", str(store)]) == 0
    return store


@pytest.mark.parametrize("flavor", ["seurat", "cell_ranger", "seurat_v3"])
def test_analyze_with_a_batch_key_selects_per_dataset_as_scanpy(demo_store, tmp_path, flavor):
    out, plot = tmp_path / "hvg_pca.zarr", tmp_path / "pca.png"
    args = ["--flavor", flavor, "--batch-key", "dataset_id", "--plot", str(plot)]
    sizes = ["--n-top-genes", "150", "--n-comps", "20", "--workers", "2"]
    assert main(["analyze", str(demo_store), str(out), "--chunk", "500", *args, *sizes]) == 0
    result = ad.read_zarr(out)
    reference = in_memory_reference(demo_store, flavor, 150, 20, batch_key="dataset_id")
    assert_matches_reference(result, reference)
    np.testing.assert_array_equal(
        result.var["highly_variable_nbatches"], reference.var["highly_variable_nbatches"]
    )
    assert result.uns["chunkatlas"]["batch_key"] == "dataset_id"
    assert plot.read_bytes()[:4] == b"\x89PNG"


def schema_defaults(section: str) -> dict:
    from chunkatlas.config import load_schema

    properties = load_schema()["properties"][section]["properties"]
    return {key: sub["default"] for key, sub in properties.items()}


def test_demo_without_options_takes_the_schema_defaults(tmp_path):
    """``chunkatlas demo demo.soma`` alone: the demo atlas the schema describes, as the
    default config builds it (a config file without a demo_atlas section as well)."""
    from chunkatlas.cli import build_parser, command_config

    defaults = schema_defaults("demo_atlas")
    assert defaults == {"n_cells": 30_000, "n_genes": 2_000, "seed": 0}
    bare = build_parser().parse_args(["demo", "demo.soma"])
    assert command_config(bare, ["demo_atlas"]) == {"demo_atlas": defaults}
    (tmp_path / "census.yaml").write_text("run: census\n")
    from_file = build_parser().parse_args(
        ["demo", "d.soma", "--configfile", f"{tmp_path}/census.yaml"]
    )
    assert command_config(from_file, ["demo_atlas"]) == {"demo_atlas": defaults}
    one = build_parser().parse_args(["demo", "demo.soma", "--seed", "4"])
    assert command_config(one, ["demo_atlas"]) == {"demo_atlas": {**defaults, "seed": 4}}


@pytest.mark.slow
def test_demo_without_options_writes_the_default_demo_atlas(tmp_path):
    import tiledbsoma

    out = tmp_path / "demo.soma"
    assert main(["demo", str(out)]) == 0
    defaults = schema_defaults("demo_atlas")
    with tiledbsoma.Experiment.open(str(out)) as experiment:
        shape = experiment.ms["RNA"].X["raw"].shape
    assert shape == (defaults["n_cells"], defaults["n_genes"])


def test_no_help_text_shows_rst_markup(capsys):
    """Descriptions and option help come from docstrings and the schema (written for Sphinx);
    the terminal shows them without backquotes."""
    from chunkatlas.cli import build_parser, plain_text

    assert (
        plain_text("``chunkatlas``, `x`, :mod:`a.b` and :func:`~c.d`")
        == "chunkatlas, x, a.b and c.d"
    )
    commands = ["demo", "fetch", "rechunk", "consolidate", "analyze", "advise"]
    for args in ([], *([name] for name in commands)):
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([*args, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert "usage: chunkatlas" in text and "`" not in text, (args, text)
