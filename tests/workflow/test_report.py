"""The paper outputs: the Snakemake report as a reader sees it, pinned environments, and
provenance recorded in the outputs."""

from __future__ import annotations

import re
import subprocess
import tomllib

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from ..report.test_report_page import WINDOWS, assert_answer_on_screen, page_layout
from ..support.chromium import CHROMIUM, FLAGS
from ..support.workflow_runs import REPO, geometries, results_dir, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def report(test_run, tmp_path_factory):
    workdir, _ = test_run
    out = workdir / "report.html"
    done = snakemake(workdir, "--configfile", str(REPO / "config/test.yaml"), "--report", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    # every item has a type Snakemake knows (provenance/config.yaml had none: issue 36)
    assert "Could not detect mimetype" not in done.stdout + done.stderr
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run does)")
def test_report_renders_with_every_figure(report, test_run, tmp_path):
    _, config = test_run
    profile = ["--user-data-dir=" + str(tmp_path / "profile"), "--virtual-time-budget=15000"]
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, *profile, "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    n_points = len(list(geometries(config)))
    for name, count in (
        ("pca.png", n_points),
        ("steps.png", 1),
        ("store_size.png", 1),
        ("remote.png", 1),
        ("analysis_passes.png", 1),
        ("analysis_passes.tsv", 1),
        ("summary.tsv", 1),
        ("config.yaml", 1),
        ("versions.tsv", 1),
    ):
        assert len(re.findall(rf'"filename": "{re.escape(name)}"', dom)) == count, name
    # every figure is embedded as PNG data
    assert dom.count(";base64,iVBORw0KGgo") >= n_points + 3
    for tissue, orientation, chunk, shard, codec in geometries(config):
        labels = (
            f'"tissue": "{tissue}", "orientation": "{orientation}", "chunk size": "{chunk}", '
            f'"chunks per shard": "{shard}"'
        )
        assert f'"labels": {{{labels}, "codec": "{codec}"}}' in dom
    for category in ("Chunk-size study", "Store geometry", "PCA", "Provenance"):
        assert category in dom
    # the first page leads with the run's answer, and captions say how often it read
    answer = results_dir(*test_run) / "recommendation.tsv"
    geometry = pd.read_csv(answer, sep="\t")["sentence"].iloc[0].split(": ", 1)[1]
    assert "Which store geometry to write" in dom and geometry.split(" (")[0] in dom
    ran = yaml.safe_load((results_dir(*test_run) / "provenance/config.yaml").read_text())
    reads = ran["config"]["remote"]["repeats"]
    said = f"the median of {reads} cold reads" if reads > 1 else "one cold read"
    assert said in dom and "median of the cold reads" not in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            *profile,
            "--window-size=1400,1000",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        timeout=180,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # a rendered page, not blank


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run does)")
@pytest.mark.parametrize("size", WINDOWS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_report_opens_on_the_answer(report, size, tmp_path):
    """The run's own first page beside its rule graph: the heading "Which store geometry to
    write…" and the first answer line are on screen in a 1400 x 1000 window and a shorter one
    (Snakemake's template centres the page, and cut off what overflowed upwards at -97 px)."""
    assert_answer_on_screen(page_layout(report, size, tmp_path))


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        match = re.match(r"^\s*(?:- )?([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if match:
            found[match[1].lower()] = match[2]
    return found


def test_conda_env_pins_equal_pyproject_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = pins(project["dependencies"])
    env = yaml.safe_load((REPO / "envs/chunkatlas.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == wanted


def test_lock_file_agrees_with_the_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = pins((REPO / "requirements.lock").read_text().splitlines())
    for extra in project["optional-dependencies"].values():
        for name, version in pins(extra).items():
            assert lock.get(name) == version, name
    for name, version in pins(project["dependencies"]).items():
        assert lock.get(name) == version, name


def test_outputs_record_version_and_config_hash(test_run):
    workdir, config = test_run
    results = results_dir(workdir, config)
    record = yaml.safe_load((results / "provenance/config.yaml").read_text())
    assert re.fullmatch(r"[0-9a-f]{16}", record["config_hash"])
    assert record["chunkatlas_version"]
    for manifest in results.rglob("store.manifest.json"):
        entry = yaml.safe_load(manifest.read_text())
        assert entry["config_hash"] == record["config_hash"]
        assert entry["chunkatlas_version"] == record["chunkatlas_version"]
    analyses = list(results.rglob("hvg_pca.zarr"))
    assert analyses
    for result in analyses:
        uns = ad.read_zarr(result).uns["chunkatlas"]
        assert uns["config_hash"] == record["config_hash"]
        assert uns["version"] == record["chunkatlas_version"]
    versions = (results / "provenance/versions.tsv").read_text()
    pinned = pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    for name in ("scanpy", "anndata", "zarr"):
        assert f"\n{name}\t{pinned[name]}\n" in versions, name
