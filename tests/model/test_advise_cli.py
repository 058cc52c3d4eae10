"""``chunkatlas advise`` on each kind of source a user holds, with the cost model of the run in
the directory it starts in, numbers as a person reads them, and one line for every bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import yaml

from chunkatlas.cli import build_parser, cmd_advise
from chunkatlas.errors import ChunkatlasError
from chunkatlas.model import REFERENCE_ORIGIN
from chunkatlas.model._text import count_text, duration_text, size_text

REPO = Path(__file__).resolve().parents[2]
N_OBS, N_VARS = 60, 30


def advise(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``chunkatlas advise ARGS`` started in ``cwd`` (where it looks for a run's model)."""
    command = [sys.executable, "-m", "chunkatlas.cli", "advise", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)


def counts(dense: bool) -> np.ndarray | sp.csr_matrix:
    x = sp.random(N_OBS, N_VARS, density=0.2, format="csr", rng=0, dtype=np.float32)
    x.data = np.ceil(x.data * 10)
    return x.toarray() if dense else x


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """The same tiny atlas as a sparse and a dense h5ad and zarr store."""
    where = tmp_path_factory.mktemp("own")
    paths = {}
    for dense in (False, True):
        adata = ad.AnnData(X=counts(dense))
        kind = "dense" if dense else "sparse"
        paths[f"{kind}.h5ad"] = where / f"{kind}.h5ad"
        adata.write_h5ad(paths[f"{kind}.h5ad"])
        paths[f"{kind}.zarr"] = where / f"{kind}.zarr"
        adata.write_zarr(paths[f"{kind}.zarr"])
    return paths


NNZ = counts(False).nnz


@pytest.mark.parametrize("name", ["sparse.h5ad", "sparse.zarr"])
def test_advise_on_a_sparse_atlas_counts_its_stored_values(sources, name, tmp_path):
    done = advise(sources[name], "--pattern", "one_gene", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"{N_OBS} cells x {N_VARS} genes, {NNZ} stored values" in out
    assert "\none_gene: " in out and "chunkatlas rechunk " in out
    if name.endswith(".h5ad"):  # rechunk reads zarr: fetch it first, to the name rechunk reads
        assert f"(first: chunkatlas fetch {sources[name]} all sparse.zarr)" in out
        assert "chunkatlas rechunk sparse.zarr sparse-" in out
    else:
        assert "(first:" not in out and f"chunkatlas rechunk {sources[name]} " in out


@pytest.mark.parametrize("name", ["dense.h5ad", "dense.zarr"])
def test_advise_on_a_dense_atlas_counts_every_value_and_says_so(sources, name, tmp_path):
    """A dense X stays dense through fetch and rechunk: each of its values is stored."""
    done = advise(sources[name], "--pattern", "cell_block", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    values = N_OBS * N_VARS
    assert f"{N_OBS} cells x {N_VARS} genes, X dense: all {values:,} values stored" in done.stdout


def test_advise_scales_a_source_to_cells_and_sizes_an_atlas_without_one(sources, tmp_path):
    done = advise(sources["sparse.h5ad"], "--cells", "6000000", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    per_cell = NNZ / N_OBS
    assert f"6,000,000 cells x {N_VARS} genes, {round(per_cell * 6e6):,} stored values" in (
        done.stdout
    )
    alone = advise(
        "--cells", "2000000", "--genes", "5000", "--values-per-cell", "800", cwd=tmp_path
    )
    assert alone.returncode == 0, alone.stderr
    assert "2,000,000 cells x 5,000 genes, 1,600,000,000 stored values (800 per cell)" in (
        alone.stdout
    )
    assert "chunkatlas rechunk ATLAS.zarr ATLAS-" in alone.stdout


def test_advise_on_a_soma_tissue(atlas, fetched, tmp_path):
    done = advise(atlas, "--tissue", "blood", "--pattern", "all_x", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert " cells x 400 genes, " in done.stdout
    assert f"(first: chunkatlas fetch {atlas} blood blood.zarr)" in done.stdout


def test_advise_prints_sizes_and_times_as_a_person_reads_them(tmp_path):
    done = advise("--cells", "100000000", "--backend", "http", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not re.search(r"\de[+-]\d", done.stdout), done.stdout  # no 2.91e+04 MB
    assert re.search(r"the second copy stores \d[\d,.]* [kMGT]?B more\)", done.stdout)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (999.7, "1 kB"),
        (1_560_000, "1.6 MB"),
        (8_980_000, "9 MB"),
        (447e6, "447 MB"),
        (2.91e10, "29 GB"),
        (1.79e11, "179 GB"),
        (3e15, "3,000 TB"),
    ],
)
def test_sizes_read_in_the_unit_that_fits(value, text):
    assert size_text(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 s"),
        (0.0523, "0.052 s"),
        (0.566, "0.57 s"),
        (4.24, "4.2 s"),
        (42.4, "42 s"),
        (59.7, "1 min"),
        (270, "4.5 min"),
        (2430, "40 min"),
        (5400, "1.5 h"),
        (3.6e6, "1,000 h"),
    ],
)
def test_durations_read_in_seconds_minutes_or_hours(value, text):
    assert duration_text(value) == text


def test_counts_have_thousands_separators():
    assert count_text(1251) == "1,251" and count_text(np.int64(40_001)) == "40,001"
    assert count_text(7) == "7"


# The cost model: the run's own in the directory advise starts in, else the reference.


def run_model(tmp_path: Path, run: str, origin: str, drop: str | None = None) -> Path:
    """A run's results/RUN/cost_model.json: the reference model's numbers, its own origin."""
    model = json.loads(files("chunkatlas.model").joinpath("reference_cost_model.json").read_text())
    model["origin"] = origin
    if drop:
        del model["backends"][drop]
    path = tmp_path / "results" / run / "cost_model.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(model))
    return path


DEFAULT_RUN = yaml.safe_load((REPO / "config/config.yaml").read_text())["run"]


def test_advise_without_a_run_here_says_it_uses_the_reference_model(tmp_path):
    done = advise("--cells", "1000000", "--pattern", "one_gene", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("cost model: the reference model shipped with chunkatlas")
    assert "no results/*/cost_model.json in this directory" in first
    assert (
        f"coefficients from the reference cost model, fitted on {REFERENCE_ORIGIN}" in done.stdout
    )


def test_advise_in_a_run_folder_uses_the_default_runs_model(tmp_path):
    import os

    run_model(tmp_path, DEFAULT_RUN, "the run's own model")
    other = run_model(tmp_path, "geometry", "another run's model")
    os.utime(other, (2e9, 2e9))  # newer: the default config's run is still preferred
    done = advise("--cells", "1000000", "--pattern", "one_gene", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith(
        f"cost model: results/{DEFAULT_RUN}/cost_model.json, of the run {DEFAULT_RUN!r} in this "
        "directory (the default config's run; also here: results/geometry/cost_model.json"
    )
    assert "coefficients from the run's own model" in done.stdout
    chosen = advise("--cells", "1000000", "--pattern", "one_gene", "--model", other, cwd=tmp_path)
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.splitlines()[0] == f"cost model: {other} (--model)"
    assert "coefficients from another run's model" in chosen.stdout


def test_advise_passes_over_a_run_model_without_the_backend(tmp_path):
    run_model(tmp_path, "mine", "http only", drop="s3")
    done = advise("--cells", "1000000", "--backend", "s3", "--pattern", "one_gene", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("cost model: the reference model shipped with chunkatlas")
    assert "results/mine/cost_model.json has no s3 fit" in first
    http = advise("--cells", "1000000", "--backend", "http", "--pattern", "one_gene", cwd=tmp_path)
    assert http.stdout.splitlines()[0].startswith(
        "cost model: results/mine/cost_model.json, of the run 'mine' in this directory "
        "(the newest run here;"
    )


def test_the_help_says_what_the_reference_model_was_fitted_on():
    reference = json.loads(
        files("chunkatlas.model").joinpath("reference_cost_model.json").read_text()
    )
    assert REFERENCE_ORIGIN in reference["origin"]
    done = subprocess.run(
        [sys.executable, "-m", "chunkatlas.cli", "advise", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = " ".join(done.stdout.split())
    assert f"fitted on {REFERENCE_ORIGIN}" in text
    assert "default run" not in text


# Every bad input: one line naming the value and what is allowed, no traceback.


def bad_sources(tmp_path: Path, atlas: str, sources: dict[str, Path]) -> list:
    import h5py
    import zarr

    (tmp_path / "notes.h5ad").write_text("not HDF5")
    with h5py.File(tmp_path / "other.h5ad", "w") as handle:
        handle["y"] = np.arange(3)
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    (tmp_path / "folder").mkdir()
    missing = tmp_path / "missing.h5ad"
    return [
        ((missing,), f"store not found: {missing} (an AnnData .zarr store or .h5ad file"),
        ((tmp_path / "gone.soma",), f"store not found: {tmp_path / 'gone.soma'}"),
        ((tmp_path / "notes.h5ad",), f"{tmp_path / 'notes.h5ad'} is not an h5ad file"),
        ((tmp_path / "other.h5ad",), "is an HDF5 file but no AnnData (h5ad)"),
        ((tmp_path / "plain.zarr",), "not an AnnData store (no encoding-type 'anndata')"),
        ((tmp_path / "folder",), "is not an AnnData store (.zarr, .h5ad) nor a SOMA Experiment"),
        ((atlas, "--tissue", "heart"), "--tissue 'heart' has no cells in"),
        ((atlas, "--tissue", "heart"), "; tissues: blood, brain, lung"),
        ((sources["sparse.h5ad"], "--tissue", "lung"), "--tissue 'lung': "),
        ((sources["sparse.h5ad"], "--genes", "10"), "--genes 10: the size of an atlas"),
        (("--cells", "10", "--genes", "100"), "--values-per-cell 1,500 is more than"),
    ]


def test_every_bad_source_is_refused_in_one_line(atlas, sources, tmp_path):
    for args, message in bad_sources(tmp_path, atlas, sources):
        parsed = build_parser().parse_args(["advise", *map(str, args)])
        with pytest.raises(ChunkatlasError) as refused:
            cmd_advise(parsed)
        assert message in str(refused.value) and "\n" not in str(refused.value), args


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--cells", "abc"), "argument --cells: 'abc' is not a positive integer"),
        (("--cells", "0"), "argument --cells: '0' is not a positive integer"),
        (("--cells", "-5"), "argument --cells: '-5' is not a positive integer"),
        (
            ("--backend", "ftp"),
            "argument --backend: invalid choice: 'ftp' (choose from 'http', 's3')",
        ),
    ],
)
def test_bad_options_are_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["advise", *args])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"chunkatlas: error: {message} (see chunkatlas advise --help)"
    ]


def test_a_bad_source_is_one_line_on_the_command_line(tmp_path):
    done = advise(tmp_path / "own.h5ad", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"chunkatlas: error: store not found: {tmp_path / 'own.h5ad'} (an AnnData .zarr store "
        "or .h5ad file, or a TileDB-SOMA Experiment)"
    ]
