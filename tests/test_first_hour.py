"""What bit a new user in the first hour: configs that destroyed each other's results, stale
provenance, spurious re-runs, --config overrides, errors after the work instead of before it,
the README's step-by-step, one-off compilation in the timings, warnings in the logs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import anndata as ad
import numpy as np
import pytest
import yaml
import zarr
from PIL import Image

from chunkatlas.store import cells_per_task_of, read_store

from .support.workflow_runs import REPO, job_counts, results_dir, snakemake, store_dir


def files_and_times(folder) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def tiny_config(run: str, **changes) -> dict:
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config.update(run=run, tissues=["lung"], chunks=[300], shards=[1], remote={"enabled": False})
    config["demo_atlas"]["n_cells"] = 600
    config["source"] = {"uri": f"results/{run}/demo_atlas.soma"}
    config.update(changes)
    return config


@pytest.mark.workflow
def test_other_configs_never_touch_a_runs_results(test_run, tmp_path):
    workdir, config = test_run
    before = files_and_times(results_dir(workdir, config))
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(tiny_config("other", analysis={"n_top_genes": 150})))
    done = snakemake(workdir, "--cores", "2", "--configfile", str(other))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (workdir / "results/other" / store_dir("lung", "cells", 300) / "hvg_pca.zarr").is_dir()
    # a bad config (a source that does not exist) stops before any job, deleting nothing
    broken = yaml.safe_load((REPO / "config/test.yaml").read_text())
    del broken["demo_atlas"]
    broken["source"] = {"uri": "nowhere.soma"}
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    done = snakemake(workdir, "--cores", "2", "--configfile", str(tmp_path / "broken.yaml"))
    assert done.returncode != 0
    assert "chunkatlas: error: config source.uri: 'nowhere.soma' does not exist" in done.stderr
    assert files_and_times(results_dir(workdir, config)) == before
    again = snakemake(workdir, "-n", "--configfile", str(REPO / "config/test.yaml"))
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # the plot's label only re-draws the plots; the provenance follows every change
        ({"analysis": {"label_key": "assay"}}, {"plot_pca", "provenance"}),
        ({"dask": {"connect_timeout": 5}}, {"provenance"}),
        ({"remote": {"timeout_seconds": 9}}, {"provenance"}),
        ({"analysis": {"n_comps": 20}}, {"analyze", "plot_pca", "summary", "provenance"}),
    ],
)
def test_a_config_change_reruns_what_it_changes_and_the_provenance(
    test_run, tmp_path, change, expected
):
    workdir, config = test_run
    changed = yaml.safe_load((REPO / "config/test.yaml").read_text())
    for section, values in change.items():
        changed[section] = {**changed.get(section, {}), **values}
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    done = snakemake(workdir, "-n", "--configfile", str(tmp_path / "changed.yaml"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(job_counts(done.stdout + done.stderr)) - {"all"} == expected


@pytest.mark.workflow
def test_config_on_the_command_line_applies_over_the_default(tmp_path):
    done = snakemake(tmp_path, "-n", "--config", "chunks=[300, 700]", "run=mine")
    assert done.returncode == 0, done.stderr[-3000:]
    default = yaml.safe_load((REPO / "config/config.yaml").read_text())
    counts = job_counts(done.stdout + done.stderr)
    shards = default.get("shards", [1])
    assert counts["analyze"] == 2 * len(default["tissues"]) * len(shards)
    assert (
        f"results/mine/{store_dir('lung', 'cells', 700, 8)}/hvg_pca.objects.json"
        in done.stdout + done.stderr
    )


@pytest.mark.workflow
def test_the_provenance_describes_the_results_beside_it(test_run):
    workdir, config = test_run
    results = results_dir(workdir, config)
    record = yaml.safe_load((results / "provenance/config.yaml").read_text())
    assert record["config"]["run"] == config["run"]
    assert record["config"]["chunks"] == config["chunks"]


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chunkatlas.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_analyze_says_what_is_wrong_before_the_work(consolidated, tmp_path):
    store, _ = consolidated
    (tmp_path / "taken.zarr").mkdir()
    done = cli("analyze", store, tmp_path / "taken.zarr", "--chunk", 100, "--n-top-genes", 100)
    # one line, and no Dask cluster started (it would have logged its dashboard)
    assert done.stderr.strip().splitlines() == [
        f"chunkatlas: error: output already exists: {tmp_path / 'taken.zarr'} (remove it first)"
    ]
    out, plot = tmp_path / "out.zarr", tmp_path / "p.png"
    done = cli("analyze", store, out, "--chunk", 100, "--plot", plot, "--label-key", "colour")
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "chunkatlas: error: --label-key 'colour' is not an obs column of"
    )
    assert "cell_type" in err[0]
    assert not out.exists() and not plot.exists()


def test_analyze_takes_cells_per_task_from_the_store(consolidated, tmp_path):
    store, _ = consolidated  # 200 cells per chunk, unsharded
    small = ("--n-top-genes", 50, "--n-comps", 5)
    done = cli("analyze", store, tmp_path / "own.zarr", *small)
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr[-2000:]
    passes = ad.read_zarr(tmp_path / "own.zarr").uns["chunkatlas"]
    done = cli("analyze", store, tmp_path / "split.zarr", "--chunk", 50, *small)
    assert done.returncode == 0, done.stderr[-2000:]
    warnings_ = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings_) == 1 and warnings_[0].startswith(
        "chunkatlas: warning: --chunk 50 cells per task splits X's stored objects (~200 cells"
    ), done.stderr
    x = zarr.open_group(store, mode="r")["X"]
    assert passes["task_cells"] == cells_per_task_of(x)[0] == 200


def test_analyze_names_the_command_that_converts_an_h5ad(consolidated, tmp_path):
    store, _ = consolidated
    ad.read_zarr(store).write_h5ad(tmp_path / "cells.h5ad")
    done = cli("analyze", tmp_path / "cells.h5ad", tmp_path / "o.zarr", "--chunk", 100)
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "is an h5ad file" in err[0]
    command = re.search(r"`chunkatlas (fetch [^`]+)`", err[0])[1].split()
    assert cli(*command).returncode == 0  # the command it names does convert it
    converted = tmp_path / "cells.zarr"
    np.testing.assert_array_equal(
        ad.read_zarr(converted).X.toarray(), ad.read_zarr(store).X.toarray()
    )


def test_a_missing_configfile_is_one_line(tmp_path):
    done = cli("run", "-n", "--configfile", "nope.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "chunkatlas: error: config file 'nope.yaml' does not exist"
    ]


@pytest.mark.workflow
def test_chunkatlas_run_is_snakemake_on_the_workflow(tmp_path):
    done = cli("run", "-n", "--configfile", REPO / "config/test.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert job_counts(done.stdout + done.stderr)["analyze"] == 4


@pytest.mark.slow
def test_warmup_compiles_every_kernel_before_the_timed_analyses(tmp_path):
    """With a cold numba cache, the warm-up leaves every fused kernel compiled on disk."""
    code = (
        "from chunkatlas.analysis._analyze import AnalysisParams, warmup; warmup(AnalysisParams())"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cached = {p.name.split("-")[0] for p in (tmp_path / "numba").rglob("*.nbi")}
    kernels = ("_row_sums", "_column_moments", "_fill_from_table", "_select_columns")
    kernels += ("_sort_rows", "_gram_sparse", "_densify_rows", "_project")
    assert {f"_kernels.{name}" for name in kernels} <= cached
    # a store as the workflow writes it (rechunked) finds every kernel compiled for its types
    compiled = sorted(p.name for p in (tmp_path / "numba").rglob("*.nbc"))
    analyse = (
        "import numpy as np, scipy.sparse as sp, anndata as ad\n"
        "from chunkatlas.analysis._analyze import AnalysisParams, analyze_store\n"
        "from chunkatlas.rewrite._rechunk import rechunk_store\n"
        "x = sp.random(900, 300, density=0.1, format='csr', rng=1, dtype=np.float32)\n"
        "x.data = np.ceil(x.data * 20)\n"
        f"ad.AnnData(x).write_zarr('{tmp_path}/in.zarr')\n"
        f"rechunk_store('{tmp_path}/in.zarr', '{tmp_path}/store.zarr', 250)\n"
        f"analyze_store('{tmp_path}/store.zarr', '{tmp_path}/out.zarr', task_cells=250,\n"
        "    params=AnalysisParams(n_top_genes=100, n_comps=10))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", analyse], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "numba").rglob("*.nbc")) == compiled


@pytest.mark.workflow
def test_the_run_warms_up_first_and_its_logs_have_no_warnings(test_run):
    workdir, config = test_run
    results = results_dir(workdir, config)
    assert yaml.safe_load((results / "warmup.yaml").read_text())["warmup_seconds"]
    for log in (results / "logs").rglob("*.log"):
        text = log.read_text()
        assert "Warning" not in text and "warning" not in text, (log, text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for tissue in config["tissues"]:
            read_store(results / store_dir(tissue, "cells", config["chunks"][0]) / "hvg_pca.zarr")


def readme_steps() -> list[list[str]]:
    """The commands of the README's "Every step outside Snakemake", as written (options in
    brackets are alternatives to the defaults, left out; comments dropped)."""
    text = (REPO / "README.md").read_text().split("## Every step outside Snakemake")[1]
    block = text.split("```bash\n")[1].split("```")[0].replace("\\\n", " ")
    commands = []
    for line in block.splitlines():
        line = re.sub(r"\[[^\]]*\]", "", line.split("#")[0]).strip()
        if line:
            commands.append(line.split())
    return commands


@pytest.mark.workflow
def test_the_readme_step_by_step_runs_as_written(tmp_path):
    commands = readme_steps()
    assert [c[:2] for c in commands] == [
        ["chunkatlas", step] for step in ("demo", "fetch", "rechunk", "consolidate", "analyze")
    ]
    for command in commands:
        done = cli(*command[1:], cwd=tmp_path)
        assert done.returncode == 0, (command, done.stderr[-3000:])
    result = read_store(tmp_path / "hvg_pca.zarr")
    assert result.var["highly_variable"].sum() > 0
    assert (tmp_path / "pca.png").read_bytes()[:4] == b"\x89PNG"


def readme_python_example() -> str:
    """The README's Python block of "Using the results in scanpy", as written."""
    text = (REPO / "README.md").read_text().split("## Using the results in scanpy")[1]
    return text.split("```python\n")[1].split("```")[0]


@pytest.mark.workflow
def test_the_readme_python_example_runs_on_a_runs_results(test_run, tmp_path):
    workdir, config = test_run
    block = readme_python_example()
    (path,) = re.findall(r'"(results/[^"]+/hvg_pca.zarr)"', block)
    # the README's folder, made of the test run's cell-major store of the same tissue (the demo
    # atlas's gene symbols are the same in both: the README's genes must be among them)
    tissue = path.split("/")[2]
    ours = results_dir(workdir, config) / store_dir(tissue, "cells", config["chunks"][0])
    (tmp_path / path).parent.parent.mkdir(parents=True)
    (tmp_path / path).parent.symlink_to(ours)
    done = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-c", block],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # run as a script (a non-interactive backend), every figure it draws is a PNG in figures/
    saved = re.findall(r'^save\("([^"]+\.png)"\)$', block, re.M)
    assert len(saved) == len(re.findall(r"^sc\.pl\.", block, re.M)) == 4
    for name in saved:
        png = tmp_path / "figures" / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 10, name  # a drawn figure, not a blank one
